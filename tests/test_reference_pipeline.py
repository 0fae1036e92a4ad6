"""ConsistentAvatarPipeline (tiny config, random weights): shapes, seeds, save/load, ablations,
schedulers, LoRA loading, and SD 1.5 folder loading with a test-made folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_helpers import random_inputs, tiny_pipeline

from metrics.errors import CabenchError, WeightsMissingError
from reference.pipeline import ABLATIONS


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_scheduler("lcm")
    return p


def test_shapes_and_dtypes_through_every_stage(pipe):
    rgb, normal, pose, expr = random_inputs(2)
    proxy, guide, control, emotions, f_d = pipe.prepare_conditions(rgb, normal, pose, expr, tsdm_steps=2,
                                                                   generator=gen())
    assert proxy.shape == guide.shape == (2, 3, 64, 64) and guide.dtype == torch.float32
    assert float(guide.min()) >= 0 and float(guide.max()) <= 1
    assert control.shape == (2, 6, 64, 64)
    assert emotions.shape == (2, pipe.text_encoder.config.hidden_size)
    assert f_d.shape == (2, 4, 32)
    out = pipe(rgb, normal, pose, expr, num_inference_steps=2, generator=gen(), output_type="np")
    assert out.images.shape == (2, 64, 64, 3) and out.images.dtype == np.uint8
    latents = pipe.encode_latents(rgb)
    assert latents.shape == (2, 4, 16, 16)


def test_same_seed_same_frames_other_seed_other_frames(pipe):
    inputs = random_inputs(2)
    a = pipe(*inputs, num_inference_steps=2, generator=gen(3)).images
    b = pipe(*inputs, num_inference_steps=2, generator=gen(3)).images
    c = pipe(*inputs, num_inference_steps=2, generator=gen(4)).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_save_load_round_trip_gives_identical_frames(pipe, tmp_path):
    from reference.pipeline import ConsistentAvatarPipeline

    pipe.save_pretrained(tmp_path / "ckpt")
    loaded = ConsistentAvatarPipeline.from_pretrained(tmp_path / "ckpt")
    assert type(loaded.unet).__name__ == "DecoupledUNet2DConditionModel"
    for name in ("unet", "tsdm_unet", "controlnet", "fcsd_encoder", "vae", "text_encoder"):
        for (k, v), (k2, v2) in zip(getattr(pipe, name).state_dict().items(),
                                    getattr(loaded, name).state_dict().items()):
            assert k == k2 and torch.equal(v, v2), (name, k)
    inputs = random_inputs(2)
    a = pipe(*inputs, num_inference_steps=2, generator=gen(), output_type="np").images
    b = loaded(*inputs, num_inference_steps=2, generator=gen(), output_type="np").images
    np.testing.assert_array_equal(a, b)


def test_each_zero_input_switch_changes_only_its_input(pipe):
    inputs = random_inputs(2)
    base = pipe.prepare_conditions(*inputs, tsdm_steps=1, generator=gen())
    _, guide0, control0, emo0, _ = base
    for ablation in ("wo_stage2", "wo_aligned_tsd", "wo_normal", "wo_emotion"):
        proxy, guide, control, emo, _ = pipe.prepare_conditions(*inputs, ablation=ablation, tsdm_steps=1,
                                                               generator=gen(), ablation_mode="zero-input")
        same_normal = torch.equal(control[:, :3], control0[:, :3])
        if ablation in ("wo_stage2", "wo_aligned_tsd"):  # the unaligned TSD replaces TSDM's
            assert torch.equal(guide, proxy) and not torch.equal(guide, guide0)
            assert same_normal and torch.equal(emo, emo0)
        elif ablation == "wo_normal":
            assert float(control[:, :3].abs().max()) == 0 and torch.equal(guide, guide0) and torch.equal(emo, emo0)
        else:
            assert float(emo.abs().max()) == 0 and float(emo0.abs().max()) > 0
            assert torch.equal(guide, guide0) and torch.equal(control, control0)
    with pytest.raises(CabenchError, match="ablation"):
        pipe.prepare_conditions(*inputs, ablation="wo_everything")
    with pytest.raises(CabenchError, match="trained variant"):  # the paper's rows are trained models
        pipe.prepare_conditions(*inputs, ablation="wo_normal")
    assert set(ABLATIONS) == {"wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd"}


def test_wo_lcm_samples_with_ddim(pipe):
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    inputs = random_inputs(1)
    ablated = pipe(*inputs, num_inference_steps=2, generator=gen(), ablation="wo_lcm").images
    lcm = pipe(*inputs, num_inference_steps=2, generator=gen()).images
    ddim_pipe = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    ddim_pipe.set_scheduler("ddim")
    ddim = ddim_pipe(*inputs, num_inference_steps=2, generator=gen()).images
    assert torch.equal(ablated, ddim) and not torch.equal(ablated, lcm)


@pytest.mark.parametrize("scheduler,steps", [("lcm", 1), ("lcm", 2), ("lcm", 4), ("ddim", 3), ("ddpm", 2)])
def test_schedulers_sample(scheduler, steps):
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    p = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    p.set_scheduler(scheduler)
    out = p(*random_inputs(1), num_inference_steps=steps, generator=gen()).images
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    assert len(p.scheduler.timesteps) == steps


def test_lora_made_by_the_test_loads_and_changes_the_unet(tmp_path):
    import copy

    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import save_file

    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    p = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    donor = copy.deepcopy(p.unet)
    donor.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                 init_lora_weights=False))
    state = get_peft_model_state_dict(donor)
    assert state and all("lora" in k for k in state)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "lcm_lora.safetensors")

    x, t = torch.randn(1, 4, 16, 16, generator=gen()), torch.tensor([500])
    ctx, tokens = p.text_context(1), torch.randn(1, 4, 32, generator=gen(1))
    kwargs = {"condition_tokens": tokens}
    before = p.unet(x, t, ctx, cross_attention_kwargs=kwargs).sample
    expected = donor(x, t, ctx, cross_attention_kwargs=kwargs).sample
    p.load_lcm_lora(tmp_path / "lcm_lora.safetensors")
    after = p.unet(x, t, ctx, cross_attention_kwargs=kwargs).sample
    assert type(p.scheduler).__name__ == "LCMScheduler"
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(CabenchError, match="do not exist"):
        p.load_lcm_lora(tmp_path / "missing.safetensors")


def test_sd15_folder_loading_with_a_test_made_folder(tmp_path, torch_home):
    from diffusers import UNet2DConditionModel

    from reference.config import (
        load_sd15_parts,
        tiny_scheduler,
        tiny_text_encoder,
        tiny_unet_kwargs,
        tiny_vae,
    )
    from reference.tokenizer import tiny_clip_tokenizer

    root = tmp_path / "sd15"
    tiny_vae().save_pretrained(root / "vae")
    tiny_text_encoder().save_pretrained(root / "text_encoder")
    tiny_clip_tokenizer().save_pretrained(root / "tokenizer")
    tiny_scheduler().save_pretrained(root / "scheduler")
    unet = UNet2DConditionModel(**tiny_unet_kwargs())
    unet.save_pretrained(root / "unet")
    vae, text_encoder, tokenizer, scheduler, loaded = load_sd15_parts(root)
    assert torch.equal(loaded.conv_in.weight, unet.conv_in.weight)

    # the sd15 config: both UNets start from the folder's UNet, ControlNet from it with 6 channels,
    # E is ResNet-18 with the local ImageNet file (absent first: a clear error naming it)
    from reference.config import build_components

    with pytest.raises(WeightsMissingError, match="resnet18-f37072fd.pth"):
        build_components("sd15", root)
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    parts = build_components("sd15", root)
    assert torch.equal(parts["unet"].conv_in.weight, unet.conv_in.weight)
    assert torch.equal(parts["tsdm_unet"].conv_in.weight, unet.conv_in.weight)
    assert parts["controlnet"].config.conditioning_channels == 6
    assert torch.equal(parts["fcsd_encoder"].image_encoder.backbone.conv1.weight, resnet.conv1.weight)
    assert parts["fcsd_encoder"].num_tokens == 4 and parts["tsdm_encoder"].num_tokens == 3
    with pytest.raises(WeightsMissingError, match="does not exist"):
        load_sd15_parts(tmp_path / "nowhere")
    import shutil

    shutil.rmtree(root / "unet")
    with pytest.raises(WeightsMissingError, match="unet/"):
        load_sd15_parts(root)
    with pytest.raises(CabenchError, match="--sd-path"):
        load_sd15_parts(None)
