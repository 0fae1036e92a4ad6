"""The shipped tiny checkpoint as a diffusers pipeline: the default call, the save/load round trip with
its LCM-LoRAs and a user's LoRA, user LoRAs beside the LCM-LoRA under every sampler, the step
placement of named samplers and of diffusers-style ``from_config`` swaps, and ``DiffusionPipeline``."""

from __future__ import annotations

import copy

import pytest
import torch
from reference_helpers import random_inputs

from reference.render import TINY_CHECKPOINT
from reference.schedulers import SCHEDULER_CLASSES, SCHEDULERS, make_scheduler

STYLE = "style"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.2", "conv1", "conv2"]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def shipped(**kwargs):
    from reference.pipeline import ConsistentAvatarPipeline

    pipe = ConsistentAvatarPipeline.from_pretrained(TINY_CHECKPOINT, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def style_lora(tmp_path_factory):
    """A user's LoRA for the shipped FCSD UNet (alpha 2, rank 4, random B), written by diffusers' own
    ``save_lora_weights``. (Text-encoder LoRAs need peft >= 0.22 under transformers 5; the venv has 0.21.)"""
    from peft import LoraConfig, get_peft_model_state_dict

    from reference.pipeline import ConsistentAvatarPipeline

    unet = copy.deepcopy(shipped(lcm_lora=False).unet)
    config = LoraConfig(r=4, lora_alpha=2, target_modules=TARGETS, init_lora_weights=False)
    torch.manual_seed(5)
    unet.add_adapter(config)
    folder = tmp_path_factory.mktemp("style")
    ConsistentAvatarPipeline.save_lora_weights(
        folder, unet_lora_layers={k: v.contiguous() for k, v in get_peft_model_state_dict(unet).items()},
        unet_lora_adapter_metadata=config.to_dict())
    return folder


def adapters_seen(pipe, **call):
    """The adapters each UNet ran with during one call: {"unet": {...}, "tsdm_unet": {...}}."""
    from reference.adapters import current_adapters

    seen = {"unet": set(), "tsdm_unet": set()}
    handles = [getattr(pipe, name).register_forward_pre_hook(
        lambda module, args, name=name: seen[name].add(tuple(current_adapters(module)))) for name in seen]
    try:
        pipe(*random_inputs(1), generator=gen(), **call)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_the_default_call_samples_with_the_checkpoints_sampler_and_step_count():
    """The folder holds the training noise process (DDPM, leading spacing: at 1000 steps it indexes
    t = 1000); loaded, the pipeline samples as the paper does, LCM at 10 steps with the LCM-LoRAs,
    and without them DDIM at 50 steps."""
    from diffusers import DDPMScheduler

    assert DDPMScheduler.load_config(TINY_CHECKPOINT / "scheduler")["_class_name"] == "DDPMScheduler"
    pipe = shipped()
    assert type(pipe.scheduler).__name__ == "LCMScheduler"
    steps = []
    frames = pipe(*random_inputs(1), generator=gen(),
                  callback_on_step_end=lambda p, i, t, values: steps.append(int(t)) or values).images
    assert len(steps) == 10 and steps[0] == 999
    pipe.set_scheduler("lcm")  # the demo's sampler, named
    assert torch.equal(pipe(*random_inputs(1), num_inference_steps=10, generator=gen()).images, frames)
    undistilled = shipped(lcm_lora=False)
    assert type(undistilled.scheduler).__name__ == "DDIMScheduler"
    undistilled.scheduler.set_timesteps(50)
    assert len(undistilled.scheduler.timesteps) == 50 and int(undistilled.scheduler.timesteps[0]) == 999


def test_the_sampler_swap_keeps_the_training_noise_schedule():
    """Every named sampler made from the loaded pipeline's scheduler is the one made from the training
    DDPM config (same settings, steps and noise levels), so the demo and training draw what they drew."""
    from diffusers import DDPMScheduler

    training = DDPMScheduler.from_pretrained(TINY_CHECKPOINT / "scheduler")
    loaded = shipped().scheduler
    for name in SCHEDULERS:
        a, b = make_scheduler(name, training.config), make_scheduler(name, loaded.config)
        assert {k: v for k, v in a.config.items() if k != "_use_default_values"} == \
               {k: v for k, v in b.config.items() if k != "_use_default_values"}, name
        assert torch.equal(a.alphas_cumprod, b.alphas_cumprod), name
        for steps in (1, 4, 10):
            a.set_timesteps(steps)
            b.set_timesteps(steps)
            assert torch.equal(a.timesteps, b.timesteps), (name, steps)


def test_named_samplers_and_from_config_swaps_place_the_same_steps(tmp_path):
    """``set_scheduler(name)`` and ``<Class>.from_config(pipe.scheduler.config)`` (the diffusers way),
    from a loaded pipeline and from one saved and loaded again, sample the same timesteps."""
    import diffusers

    pipe = shipped()
    pipe.save_pretrained(tmp_path)
    again = type(pipe).from_pretrained(tmp_path)
    assert type(again.scheduler).__name__ == "LCMScheduler"
    for name in SCHEDULERS:
        cls = getattr(diffusers, SCHEDULER_CLASSES[name])
        for source in (pipe, again):
            named = make_scheduler(name, source.scheduler.config)
            swapped = cls.from_config(source.scheduler.config)
            for steps in (1, 4, 10, 50):
                named.set_timesteps(steps)
                swapped.set_timesteps(steps)
                assert torch.equal(named.timesteps, swapped.timesteps), (name, steps)
                assert int(named.timesteps[0]) == 999


def test_save_and_load_round_trip_renders_identical_frames_with_every_lora(style_lora, tmp_path):
    """from_pretrained -> a user's LoRA at weight 0.7 -> save_pretrained -> from_pretrained -> the same
    frames under LCM (both LCM-LoRAs + the user's) and DDIM (the user's alone); every model folder holds
    plain weights, every LoRA a diffusers LoRA folder that diffusers' own loader reads; saving again
    writes the same tensors."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from safetensors.torch import load_file

    pipe = shipped()
    pipe.load_lora_weights(style_lora, adapter_name=STYLE)
    pipe.set_adapters([STYLE], [0.7])
    pipe.save_pretrained(tmp_path / "a")
    loaded = type(pipe).from_pretrained(tmp_path / "a")
    loaded.set_progress_bar_config(disable=True)
    assert not any(p.is_meta for name in ("unet", "tsdm_unet", "text_encoder")
                   for p in getattr(loaded, name).parameters())
    for name in ("unet", "tsdm_unet"):
        keys = load_file(tmp_path / "a" / name / "diffusion_pytorch_model.safetensors")
        assert keys and not any("lora_" in k or "base_layer" in k for k in keys), name
    assert not any("lora_" in k for k in load_file(tmp_path / "a" / "text_encoder" / "model.safetensors"))
    for folder in ("unet_lcm_lora", "tsdm_unet_lcm_lora", f"loras/{STYLE}"):
        state, _, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(
            str(tmp_path / "a" / folder), weight_name="pytorch_lora_weights.safetensors", return_lora_metadata=True)
        assert state and all(k.startswith(("unet.", "text_encoder.")) for k in state) and metadata, folder
    inputs = random_inputs(2)
    for sampler, steps in (("lcm", 2), ("ddim", 2)):
        pipe.set_scheduler(sampler)
        loaded.set_scheduler(sampler)
        a = pipe(*inputs, num_inference_steps=steps, tsdm_steps=2, generator=gen(), emotion="happy").images
        b = loaded(*inputs, num_inference_steps=steps, tsdm_steps=2, generator=gen(), emotion="happy").images
        assert torch.equal(a, b), sampler
    loaded.save_pretrained(tmp_path / "b")
    for path in sorted((tmp_path / "a").rglob("*.safetensors")):
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        first, second = load_file(path), load_file(twin)
        assert first.keys() == second.keys() and all(torch.equal(v, second[k]) for k, v in first.items()), path
    assert (tmp_path / "a" / "loras" / "adapters.json").read_text() == \
           (tmp_path / "b" / "loras" / "adapters.json").read_text()


def test_a_users_lora_composes_with_the_lcm_lora_under_every_sampler(style_lora):
    """With a user's LoRA set at weight 0.5: under LCM both UNets run their LCM-LoRA and the FCSD UNet the
    user's beside it; under every other sampler the user's alone (the LCM-LoRAs off). Inside LCM
    sampling the UNet computes what a copy set by diffusers' ``set_adapters([style, lcm], [0.5, 1])``
    computes, inside any other what a copy set to ``[style]`` at 0.5 does; loading the LCM-LoRA
    again (at 0.8) keeps the user's adapter on."""
    from reference.lcm import lcm_weights

    pipe = shipped()
    pipe.load_lora_weights(style_lora, adapter_name=STYLE)
    pipe.set_adapters([STYLE], [0.5])
    for sampler in SCHEDULERS:
        pipe.set_scheduler(sampler)
        seen = adapters_seen(pipe, num_inference_steps=1, tsdm_steps=1)
        if sampler == "lcm":
            assert seen == {"unet": {(STYLE, "lcm")}, "tsdm_unet": {("lcm",)}}, sampler
        else:
            assert seen == {"unet": {(STYLE,)}, "tsdm_unet": {()}}, sampler
        assert pipe.get_active_adapters() == [STYLE]  # the call leaves the adapters as the user set them

    x, t = torch.randn(1, 4, 16, 16, generator=gen()), torch.tensor([499])
    ctx, tokens = pipe.text_context(1), torch.randn(1, 4, 32, generator=gen(1))

    def eps(unet):
        with torch.no_grad():
            return unet(x, t, ctx, condition_tokens=tokens).sample

    outputs = {}
    for lcm, names, weights in ((True, [STYLE, "lcm"], [0.5, 1.0]), (False, [STYLE], [0.5])):
        twin = copy.deepcopy(pipe.unet)
        twin.set_adapters(names, weights)
        with lcm_weights([pipe.unet], enabled=lcm):
            outputs[lcm] = eps(pipe.unet)
        torch.testing.assert_close(outputs[lcm], eps(twin))
    assert float((outputs[True] - outputs[False]).abs().max()) > 1e-3  # the LCM-LoRA matters
    twin = copy.deepcopy(pipe.unet)
    twin.set_adapters([STYLE, "lcm"], [0.5, 0.8])
    pipe.load_lcm_lora(TINY_CHECKPOINT / "unet_lcm_lora" / "pytorch_lora_weights.safetensors", scale=0.8)
    assert pipe.get_active_adapters() == [STYLE, "lcm"]
    with lcm_weights([pipe.unet], enabled=True):
        torch.testing.assert_close(eps(pipe.unet), eps(twin))


def test_diffusion_pipeline_from_pretrained_names_the_class_to_use():
    """diffusers' generic loader looks the class up in diffusers: it fails in one line naming it."""
    from diffusers import DiffusionPipeline

    with pytest.raises(AttributeError) as error:
        DiffusionPipeline.from_pretrained(TINY_CHECKPOINT)
    message = str(error.value)
    assert "ConsistentAvatarPipeline" in message and "\n" not in message


def test_an_adapter_file_has_the_same_bytes_whatever_order_safetensors_wrote_its_metadata_in(tmp_path):
    """safetensors writes ``__metadata__`` from a hash map whose order changes per process: the same
    header with its two metadata keys in either order becomes one file, which still loads."""
    import json
    import struct

    from safetensors import safe_open
    from safetensors.torch import save_file

    from reference.adapters import _sort_metadata

    tensors = {"unet.a.lora_A.weight": torch.arange(6.0).view(2, 3), "unet.a.lora_B.weight": torch.ones(3, 2)}
    save_file(tensors, tmp_path / "x.safetensors", metadata={"format": "pt", "lora_adapter_metadata": "{}"})
    raw = (tmp_path / "x.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    files = []
    for order in (["format", "lora_adapter_metadata"], ["lora_adapter_metadata", "format"]):
        header["__metadata__"] = {key: header["__metadata__"][key] for key in order}
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        path = tmp_path / f"{order[0]}.safetensors"
        path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])
        _sort_metadata(path)
        files.append(path)
    assert files[0].read_bytes() == files[1].read_bytes()
    with safe_open(str(files[0]), "pt") as f:
        assert f.metadata() == {"format": "pt", "lora_adapter_metadata": "{}"}
        assert all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())


def test_latents_set_the_fcsds_initial_noise_as_in_diffusers_pipelines(capsys):
    """``latents=``: the FCSD starts from them (times the sampler's ``init_noise_sigma``) instead of drawing
    from the generator. Without a TSDM (``wo_stage2``) the FCSD's noise is the generator's first draw, so the
    default call equals a call given that draw as latents (and the generator past it); under DDIM, which draws nothing after the start,
    the latents alone decide the frames, whatever the generator. A wrong shape is one error naming them."""
    from diffusers.utils.torch_utils import randn_tensor

    from metrics.errors import CabenchError

    pipe = shipped(ablation="wo_stage2")
    inputs = random_inputs(2)
    shape = (2, pipe.unet.config.in_channels, 32 // pipe.vae_scale_factor, 32 // pipe.vae_scale_factor)
    call = dict(ablation="wo_stage2", num_inference_steps=2)
    for scheduler in ("lcm", "ddim"):
        drawn = pipe(*inputs, generator=gen(3), scheduler=scheduler, **call).images
        generator = gen(3)
        noise = randn_tensor(shape, generator=generator)  # the generator then goes on to LCM's later draws
        given = pipe(*inputs, generator=generator, scheduler=scheduler, latents=noise, **call).images
        assert torch.equal(drawn, given), scheduler
    fixed = torch.randn(shape, generator=gen(8))
    ddim = [pipe(*inputs, generator=gen(seed), scheduler="ddim", latents=fixed, **call).images for seed in (0, 1)]
    assert torch.equal(ddim[0], ddim[1])
    assert not torch.equal(ddim[0], pipe(*inputs, generator=gen(0), scheduler="ddim", **call).images)
    with pytest.raises(CabenchError, match=r"latents: shape \(1, "):
        pipe(*inputs, generator=gen(0), latents=fixed[:1], **call)
