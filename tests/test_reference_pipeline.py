"""ConsistentAvatarPipeline (tiny config, random weights): shapes, seeds, save/load, ablations, samplers,
diffusers conventions (output types, callbacks, progress bar, offload, fp16 variants), the decoupled
attention's survival, LoRA files in the published formats, and the sd15 TSDM sharing the FCSD's UNet."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from reference_helpers import random_inputs, tiny_pipeline

from metrics.errors import CabenchError, WeightsMissingError
from reference.pipeline import ABLATIONS


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def fresh_pipeline():
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    p = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_scheduler("lcm")
    return p


def test_shapes_and_dtypes_through_every_stage(pipe):
    rgb, normal, pose, expr = random_inputs(2)
    proxy, guide, control, emotions, f_d = pipe.prepare_conditions(rgb, normal, pose, expr, tsdm_steps=2,
                                                                   generator=gen())
    assert proxy.shape == guide.shape == (2, 3, 32, 32) and guide.dtype == torch.float32
    assert float(guide.min()) >= 0 and float(guide.max()) <= 1
    assert control.shape == (2, 6, 32, 32)
    assert emotions.shape == (2, pipe.text_encoder.config.hidden_size)
    assert f_d.shape == (2, 4, 32)
    latents = pipe.encode_latents(rgb)
    assert latents.shape == (2, 4, 8, 8)


def test_output_types_follow_diffusers(pipe):
    inputs = random_inputs(2)
    pt = pipe(*inputs, num_inference_steps=2, generator=gen()).images
    assert pt.shape == (2, 3, 32, 32) and pt.dtype == torch.float32 and 0 <= float(pt.min()) <= float(pt.max()) <= 1
    as_np = pipe(*inputs, num_inference_steps=2, generator=gen(), output_type="np").images
    assert isinstance(as_np, np.ndarray) and as_np.shape == (2, 32, 32, 3) and as_np.dtype == np.float32
    np.testing.assert_array_equal(as_np, pt.permute(0, 2, 3, 1).numpy())
    pil = pipe(*inputs, num_inference_steps=2, generator=gen(), output_type="pil").images
    assert len(pil) == 2 and pil[0].size == (32, 32) and pil[0].mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pil[1]), (as_np[1] * 255).round().astype(np.uint8))
    latent = pipe(*inputs, num_inference_steps=2, generator=gen(), output_type="latent").images
    assert latent.shape == (2, 4, 8, 8)
    torch.testing.assert_close(pipe.decode_latents(latent), pt)
    as_tuple = pipe(*inputs, num_inference_steps=2, generator=gen(), return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], pt)
    with pytest.raises(CabenchError, match="output_type"):
        pipe(*inputs, num_inference_steps=1, output_type="jpeg")


def test_same_seed_same_frames_other_seed_other_frames(pipe):
    inputs = random_inputs(2)
    a = pipe(*inputs, num_inference_steps=2, generator=gen(3)).images
    b = pipe(*inputs, num_inference_steps=2, generator=gen(3)).images
    c = pipe(*inputs, num_inference_steps=2, generator=gen(4)).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_one_emotion_label_is_every_frames_label(pipe):
    inputs = random_inputs(3)
    one = pipe(*inputs, emotion="happy", num_inference_steps=1, generator=gen()).emotion_embeddings
    each = pipe(*inputs, emotion=["happy"] * 3, num_inference_steps=1, generator=gen()).emotion_embeddings
    torch.testing.assert_close(one, each)
    assert not torch.allclose(one[0], pipe.embed_emotions(["h"])[0])
    with pytest.raises(CabenchError, match="2 labels for 3 frames"):
        pipe(*inputs, emotion=["happy", "sad"], num_inference_steps=1)


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


def test_fp16_variant_folder_loads_with_variant_and_dtype(pipe, tmp_path):
    from reference.pipeline import ConsistentAvatarPipeline
    from reference.render import load_pipeline

    copy.deepcopy(pipe).to(torch.float16).save_pretrained(tmp_path / "half", variant="fp16")
    assert sorted(p.name for p in (tmp_path / "half" / "unet").iterdir()) == [
        "config.json", "diffusion_pytorch_model.fp16.safetensors"]
    with pytest.raises((OSError, ValueError)):
        ConsistentAvatarPipeline.from_pretrained(tmp_path / "half")  # no fp32 files: diffusers asks for the variant
    half = ConsistentAvatarPipeline.from_pretrained(tmp_path / "half", variant="fp16", torch_dtype=torch.float16)
    assert {getattr(half, n).dtype for n in ("unet", "tsdm_unet", "controlnet", "vae", "text_encoder")} == {torch.float16}
    torch.testing.assert_close(half.unet.conv_in.weight.float(), pipe.unet.conv_in.weight.half().float())
    auto = load_pipeline(tmp_path / "half", device="cpu")  # the loader finds the variant itself
    assert auto.unet.dtype == torch.float32
    torch.testing.assert_close(auto.unet.conv_in.weight, pipe.unet.conv_in.weight.half().float())


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


def _steps_taken(p, **kwargs) -> list:
    seen = []

    def count(pipeline, i, t, values):
        seen.append(int(t))
        return values

    p(*random_inputs(1), generator=gen(), callback_on_step_end=count, **kwargs)
    return seen


def test_default_step_counts_lcm_ten_wo_lcm_ddim_fifty(pipe):
    assert len(_steps_taken(pipe)) == 10  # the paper samples with about 10 LCM steps
    assert len(_steps_taken(pipe, num_inference_steps=3)) == 3
    wo_lcm = _steps_taken(pipe, ablation="wo_lcm", tsdm_steps=1)
    assert len(wo_lcm) == 50 and wo_lcm[0] == 999  # DDIM at its usual count, from the last timestep


def test_wo_lcm_samples_the_undistilled_weights_with_ddim(pipe):
    inputs = random_inputs(1)
    ablated = pipe(*inputs, num_inference_steps=2, generator=gen(), ablation="wo_lcm").images
    lcm = pipe(*inputs, num_inference_steps=2, generator=gen()).images
    ddim_pipe = fresh_pipeline()
    ddim_pipe.set_scheduler("ddim")
    ddim = ddim_pipe(*inputs, num_inference_steps=2, generator=gen()).images
    assert torch.equal(ablated, ddim) and not torch.equal(ablated, lcm)


def test_a_folders_lcm_loras_load_and_only_lcm_sampling_uses_them(tmp_path):
    """LCM-LoRAs saved in a pipeline folder (as ``cabench train distill-lcm`` writes them; the TSDM's
    with the decoupled branch's earlier ``to_k_c`` / ``to_v_c`` key names) load with the folder; LCM
    samples with them (unless the call says ``lcm_lora=False``), DDIM and ``wo_lcm`` with the undistilled weights."""
    from safetensors.torch import load_file, save_file

    from reference.lcm import LORA_FOLDERS, LORA_WEIGHTS, add_lcm_lora, has_lcm_lora, save_lcm_lora
    from reference.pipeline import ConsistentAvatarPipeline

    plain = fresh_pipeline()
    plain.save_pretrained(tmp_path)
    distilled = fresh_pipeline()
    for name in LORA_FOLDERS:
        unet = getattr(distilled, name)
        add_lcm_lora(unet, rank=2, seed=0)
        with torch.no_grad():
            for key, parameter in unet.named_parameters():
                if "lora_B" in key:
                    parameter.copy_(torch.randn(parameter.shape, generator=gen(3)) * 0.1)
        save_lcm_lora(unet, tmp_path / LORA_FOLDERS[name])
    legacy = tmp_path / LORA_FOLDERS["tsdm_unet"] / LORA_WEIGHTS
    state = load_file(legacy)
    assert any(".processor.to_k_ip.0." in k for k in state)
    save_file({k.replace(".to_k_ip.0.", ".to_k_c.").replace(".to_v_ip.0.", ".to_v_c."): v for k, v in state.items()},
              legacy)

    loaded = ConsistentAvatarPipeline.from_pretrained(tmp_path)
    without = ConsistentAvatarPipeline.from_pretrained(tmp_path, lcm_lora=False)
    assert has_lcm_lora(loaded.unet) and has_lcm_lora(loaded.tsdm_unet) and not has_lcm_lora(without.unet)
    inputs = random_inputs(1)

    def frames(p, scheduler, **kwargs):
        p.set_progress_bar_config(disable=True)
        p.set_scheduler(scheduler)
        return p(*inputs, num_inference_steps=2, generator=gen(), **kwargs)

    lcm, reference = frames(loaded, "lcm"), frames(distilled, "lcm")
    torch.testing.assert_close(lcm.guide_tsd, reference.guide_tsd)  # the legacy-named TSDM LoRA loaded whole
    torch.testing.assert_close(lcm.images, reference.images)
    assert not torch.allclose(lcm.images, frames(without, "lcm").images)
    # the call's switch: LCM with the loaded LoRA off samples exactly the folder loaded without it
    assert torch.equal(frames(loaded, "lcm", lcm_lora=False).images, frames(without, "lcm").images)
    assert torch.equal(frames(loaded, "ddim").images, frames(without, "ddim").images)
    assert torch.equal(frames(loaded, "lcm", ablation="wo_lcm").images, frames(without, "ddim").images)


def test_the_lcm_lora_init_depends_on_its_seed_alone():
    """A new process starts torch's global generator from a random seed: the adapter's A matrices
    come from the seed given, whatever was drawn before, and the caller's generator is left as it was."""
    from reference.lcm import add_lcm_lora

    def lora_a(seed, global_seed):
        unet = fresh_pipeline().unet
        torch.manual_seed(global_seed)
        add_lcm_lora(unet, rank=2, seed=seed)
        after = torch.rand(1)
        torch.manual_seed(global_seed)
        assert torch.equal(after, torch.rand(1))  # the global generator was not advanced
        return {k: v.detach().clone() for k, v in unet.named_parameters() if "lora_A" in k}

    first, second, other = lora_a(7, 1), lora_a(7, 2), lora_a(8, 1)
    assert first and all(torch.equal(v, second[k]) for k, v in first.items())
    assert all(v.abs().sum() > 0 for v in first.values())
    assert not any(torch.equal(v, other[k]) for k, v in first.items())


@pytest.mark.parametrize("scheduler,steps", [("lcm", 1), ("lcm", 4), ("ddim", 3), ("ddpm", 2), ("euler_a", 2)])
def test_named_samplers_sample(scheduler, steps):
    p = fresh_pipeline()
    p.set_scheduler(scheduler)
    out = p(*random_inputs(1), num_inference_steps=steps, generator=gen()).images
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    assert len(p.scheduler.timesteps) == steps


def test_one_step_ddim_starts_from_the_last_timestep():
    from reference.schedulers import make_scheduler

    config = fresh_pipeline().scheduler.config
    for name in ("ddim", "ddpm", "lcm"):
        scheduler = make_scheduler(name, config)
        scheduler.set_timesteps(1)
        assert int(scheduler.timesteps[0]) == 999, name
    assert _steps_taken(fresh_pipeline(), ablation="wo_lcm", num_inference_steps=1) == [999]


def test_any_noise_predicting_diffusers_scheduler_via_from_config_solves_the_same_ode():
    """Euler, DPM-Solver++ and UniPC set as diffusers users do agree with DDIM at 20 steps: they
    integrate the same probability-flow ODE from the same noise (random tiny weights)."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    p = fresh_pipeline()
    training = p.scheduler.config
    inputs = random_inputs(1)
    frames = {}
    for cls in (DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler):
        p.scheduler = cls.from_config(training, timestep_spacing="trailing")
        frames[cls.__name__] = p(*inputs, num_inference_steps=20, generator=gen()).images
        assert len(p.scheduler.timesteps) == 20
    reference = frames.pop("DDIMScheduler")
    p.scheduler = DDIMScheduler.from_config(training, timestep_spacing="trailing")
    other_seed = (p(*inputs, num_inference_steps=20, generator=gen(1)).images - reference).abs().mean()
    for name, image in frames.items():
        gap = (image - reference).abs()
        assert float(gap.mean()) < 0.1 * float(other_seed) and float(gap.max()) < 0.15, name
    p.scheduler = DDIMScheduler.from_config(training, prediction_type="v_prediction")
    with pytest.raises(CabenchError, match="prediction_type"):
        p(*inputs, num_inference_steps=1)


def test_callback_on_step_end_sees_and_replaces_the_latents(pipe):
    inputs = random_inputs(1)
    seen = []

    def zero_last(pipeline, i, t, values):
        seen.append((i, int(t), tuple(values["latents"].shape)))
        return {"latents": torch.zeros_like(values["latents"])} if i == 2 else values

    out = pipe(*inputs, num_inference_steps=3, generator=gen(), callback_on_step_end=zero_last,
               output_type="latent").images
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][2] == (1, 4, 8, 8)
    assert float(out.abs().max()) == 0
    with pytest.raises(CabenchError, match="callback_on_step_end_tensor_inputs"):
        pipe(*inputs, num_inference_steps=1, callback_on_step_end=zero_last,
             callback_on_step_end_tensor_inputs=["noise_pred"])


def test_progress_bar_follows_the_pipeline_config(capsys):
    p = fresh_pipeline()
    p.set_progress_bar_config(disable=False, desc="sampling")
    p(*random_inputs(1), num_inference_steps=2, generator=gen())
    assert "sampling" in capsys.readouterr().err
    p.set_progress_bar_config(disable=True)
    p(*random_inputs(1), num_inference_steps=2, generator=gen())
    assert "sampling" not in capsys.readouterr().err


def test_model_cpu_offload_renders_the_same_frames():
    p = fresh_pipeline()
    inputs = random_inputs(1)
    before = p(*inputs, num_inference_steps=2, generator=gen()).images
    p.enable_model_cpu_offload(device="cpu")
    assert all(hasattr(getattr(p, name), "_hf_hook") for name in ("unet", "tsdm_unet", "controlnet", "vae"))
    assert p._execution_device.type == "cpu"
    torch.testing.assert_close(p(*inputs, num_inference_steps=2, generator=gen()).images, before)


def test_decoupled_attention_survives_or_refuses_processor_changes():
    from diffusers.models.attention_processor import AttnProcessor2_0

    p = fresh_pipeline()
    inputs = random_inputs(1)
    before = p(*inputs, num_inference_steps=1, generator=gen()).images
    p.unet.set_attn_processor(p.unet.attn_processors)  # re-setting the same processors is allowed
    torch.testing.assert_close(p(*inputs, num_inference_steps=1, generator=gen()).images, before)
    for change in (lambda: p.unet.set_attn_processor(AttnProcessor2_0()), p.enable_attention_slicing,
                   p.unet.set_default_attn_processor, p.unet.fuse_qkv_projections):
        with pytest.raises(CabenchError, match="decoupled cross-attention"):
            change()
    torch.testing.assert_close(p(*inputs, num_inference_steps=1, generator=gen()).images, before)
    layer = next(m for name, m in p.unet.named_modules() if name.endswith("attn2"))
    layer.set_processor(AttnProcessor2_0())  # diffusers allows this on one layer, with a log line only
    with pytest.raises(CabenchError, match="removed from 1 layer"):
        p(*inputs, num_inference_steps=1, generator=gen())


def test_unet_without_condition_tokens_is_an_error():
    p = fresh_pipeline()
    x, t, ctx = torch.randn(1, 4, 16, 16), torch.tensor([10]), p.text_context(1)
    with pytest.raises(CabenchError, match="condition tokens"):
        p.unet(x, t, ctx)
    tokens = torch.randn(1, 4, 32, generator=gen())
    a = p.unet(x, t, ctx, condition_tokens=tokens).sample
    b = p.unet(x, t, ctx, added_cond_kwargs={"image_embeds": [tokens]}).sample
    c = p.unet(x, t, ctx, cross_attention_kwargs={"condition_tokens": tokens}).sample
    assert torch.equal(a, b) and torch.equal(a, c)


def test_checkpoint_of_the_earlier_attention_layout_loads(tmp_path):
    """Folders written when the branch was ``processor.to_k_c`` / ``to_v_c`` load into the IP-Adapter layout."""
    from safetensors.torch import load_file, save_file

    from reference.models import DecoupledUNet2DConditionModel

    p = fresh_pipeline()
    with torch.no_grad():
        for name, param in p.unet.named_parameters():
            if ".to_v_ip." in name:
                param.normal_(generator=gen(2))  # a trained, non-zero branch
    p.unet.save_pretrained(tmp_path / "unet")
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    old = {k.replace(".to_k_ip.0.", ".to_k_c.").replace(".to_v_ip.0.", ".to_v_c."): v for k, v in state.items()}
    assert any(".to_v_c." in k for k in old)
    save_file(old, weights)
    loaded = DecoupledUNet2DConditionModel.from_pretrained(tmp_path / "unet")
    for k, v in p.unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def _lora_donor(unet, alpha: int):
    from peft import LoraConfig, get_peft_model_state_dict

    donor = copy.deepcopy(unet)
    config = LoraConfig(r=4, lora_alpha=alpha, init_lora_weights=False,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.2",
                                        "conv1", "conv2", "time_emb_proj"])
    donor.add_adapter(config)
    return donor, config, {k: v.contiguous() for k, v in get_peft_model_state_dict(donor).items()}


@pytest.mark.parametrize("layout", ["kohya", "diffusers", "peft"])
def test_lcm_lora_files_in_the_published_formats_load(tmp_path, layout):
    """A LoRA written by the test in kohya, diffusers (``unet.`` prefix) and bare PEFT form changes the UNet
    exactly as PEFT applies it to a copy (alpha / rank kept: 2/4 where the format stores alpha)."""
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    from reference.pipeline import ConsistentAvatarPipeline

    p = fresh_pipeline()
    donor, config, state = _lora_donor(p.unet, alpha=4 if layout == "peft" else 2)
    path = tmp_path / "lcm_lora.safetensors"
    if layout == "kohya":  # lora_unet_<module>.lora_down / lora_up / alpha
        kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in state.items()})
        save_file({k: torch.tensor(2.0) if k.endswith(".alpha") else v.contiguous() for k, v in kohya.items()}, path)
        assert all(k.startswith("lora_unet_") for k in kohya)
    elif layout == "diffusers":
        ConsistentAvatarPipeline.save_lora_weights(tmp_path, unet_lora_layers=state,
                                                   unet_lora_adapter_metadata=config.to_dict(),
                                                   weight_name=path.name)
    else:
        save_file(state, path)
    x, t = torch.randn(1, 4, 16, 16, generator=gen()), torch.tensor([500])
    ctx, tokens = p.text_context(1), torch.randn(1, 4, 32, generator=gen(1))
    with torch.no_grad():
        before = p.unet(x, t, ctx, condition_tokens=tokens).sample
        expected = donor(x, t, ctx, condition_tokens=tokens).sample
    inputs = random_inputs(1)
    p.set_scheduler("ddim")
    ddim_before = p(*inputs, num_inference_steps=2, generator=gen()).images
    p.load_lcm_lora(path)
    with torch.no_grad():
        after = p.unet(x, t, ctx, condition_tokens=tokens).sample
    assert type(p.scheduler).__name__ == "LCMScheduler"
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)
    # the undistilled sampler runs on the undistilled weights: the LCM-LoRA is off for that call only
    p.set_scheduler("ddim")
    torch.testing.assert_close(p(*inputs, num_inference_steps=2, generator=gen()).images, ddim_before)
    with torch.no_grad():
        torch.testing.assert_close(p.unet(x, t, ctx, condition_tokens=tokens).sample, expected, atol=1e-5, rtol=1e-5)


def test_lcm_lora_errors(tmp_path):
    from safetensors.torch import save_file

    p = fresh_pipeline()
    with pytest.raises(CabenchError, match="do not exist"):
        p.load_lcm_lora(tmp_path / "missing.safetensors")
    save_file({"unet.nowhere.lora_A.weight": torch.zeros(4, 8), "unet.nowhere.lora_B.weight": torch.zeros(8, 4)},
              tmp_path / "other.safetensors")
    with pytest.raises(CabenchError, match="no layer matches"):
        p.load_lcm_lora(tmp_path / "other.safetensors")
    with pytest.raises(CabenchError, match="component"):
        p.load_lcm_lora(tmp_path / "other.safetensors", component="vae")


def _sd15_folder(root):
    """A folder in the SD 1.5 layout holding tiny random parts (the sd15 code path at toy size)."""
    from diffusers import UNet2DConditionModel

    from reference.config import tiny_scheduler, tiny_text_encoder, tiny_unet_kwargs, tiny_vae
    from reference.tokenizer import tiny_clip_tokenizer

    torch.manual_seed(0)
    tiny_vae().save_pretrained(root / "vae")
    tiny_text_encoder().save_pretrained(root / "text_encoder")
    tiny_clip_tokenizer().save_pretrained(root / "tokenizer")
    tiny_scheduler().save_pretrained(root / "scheduler")
    unet = UNet2DConditionModel(**tiny_unet_kwargs())
    unet.save_pretrained(root / "unet")
    return unet


def test_sd15_folder_loading_with_a_test_made_folder(tmp_path, torch_home):
    from reference.config import build_components, load_sd15_parts

    root = tmp_path / "sd15"
    unet = _sd15_folder(root)
    vae, text_encoder, tokenizer, scheduler, loaded = load_sd15_parts(root)
    assert torch.equal(loaded.conv_in.weight, unet.conv_in.weight)

    # the sd15 config: both UNets start from the folder's UNet, ControlNet from it with 6 channels,
    # E is ResNet-18 with the local ImageNet file (absent first: a clear error naming it)
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


def _unique_bytes(modules) -> int:
    seen = {}
    for module in modules:
        for p in module.parameters():
            seen[p.data_ptr()] = p.numel() * p.element_size()
    return sum(seen.values())


def test_sd15_tsdm_shares_the_frozen_unet_in_memory_and_on_disk(tmp_path):
    """sd15: one frozen SD UNet under TSDM and FCSD (their condition branches differ), saved once and
    tied again on load; tiny trains both UNets whole, so there they are two."""
    from dataclasses import replace

    from diffusers import UNet2DConditionModel

    from reference.config import (
        assemble_components,
        get_config,
        tiny_scheduler,
        tiny_text_encoder,
        tiny_unet_kwargs,
        tiny_vae,
    )
    from reference.models import DecoupledUNet2DConditionModel
    from reference.pipeline import ConsistentAvatarPipeline
    from reference.tokenizer import tiny_clip_tokenizer

    torch.manual_seed(0)
    base = UNet2DConditionModel(**tiny_unet_kwargs())
    sd15_at_toy_width = replace(get_config("sd15"), condition_dim=32, controlnet_embedding_channels=(16, 32, 32),
                                encoder="tiny")  # the sd15 rule (frozen SD UNet) on tiny parts
    parts = assemble_components(sd15_at_toy_width, base, tiny_vae(), tiny_text_encoder(), tiny_clip_tokenizer(),
                                tiny_scheduler())
    p = ConsistentAvatarPipeline(**parts)
    p.set_progress_bar_config(disable=True)
    tsdm, fcsd = p.tsdm_unet, p.unet
    assert tsdm.conv_in.weight is fcsd.conv_in.weight and tsdm.config.shares_base_with == "unet"
    branch_t = [v for k, v in tsdm.named_parameters() if ".to_k_ip." in k]
    branch_f = [v for k, v in fcsd.named_parameters() if ".to_k_ip." in k]
    assert all(a is not b for a, b in zip(branch_t, branch_f))
    base_bytes = _unique_bytes([base])
    assert _unique_bytes([tsdm, fcsd]) < base_bytes * 1.1  # one base (+ two small branches), not two
    tiny = fresh_pipeline()
    assert _unique_bytes([tiny.tsdm_unet, tiny.unet]) > base_bytes * 1.9

    inputs = random_inputs(1)
    p.set_scheduler("ddim")  # one named sampler on both sides (a loaded folder samples with its default one)
    before = p(*inputs, num_inference_steps=2, generator=gen()).images
    p.save_pretrained(tmp_path / "sd15")
    tsdm_file = tmp_path / "sd15" / "tsdm_unet" / "diffusion_pytorch_model.safetensors"
    unet_file = tmp_path / "sd15" / "unet" / "diffusion_pytorch_model.safetensors"
    assert tsdm_file.stat().st_size < 0.2 * unet_file.stat().st_size
    loaded = ConsistentAvatarPipeline.from_pretrained(tmp_path / "sd15")
    assert loaded.tsdm_unet.conv_in.weight is loaded.unet.conv_in.weight
    loaded.set_progress_bar_config(disable=True)
    loaded.set_scheduler("ddim")
    torch.testing.assert_close(loaded(*inputs, num_inference_steps=2, generator=gen()).images, before)
    moved = loaded.to(torch.float64)
    assert moved.tsdm_unet.conv_in.weight is moved.unet.conv_in.weight and moved.unet.dtype == torch.float64
    alone = DecoupledUNet2DConditionModel.from_pretrained(tmp_path / "sd15" / "tsdm_unet")
    with pytest.raises(CabenchError, match="shares its frozen base"):
        alone(torch.randn(1, 4, 16, 16), torch.tensor([1]), torch.randn(1, 16, 32), condition_tokens=torch.randn(1, 3, 32))
