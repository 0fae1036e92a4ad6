"""Latent consistency distillation (LCD) into an LCM-LoRA, so LCM sampling works in 1-10 steps.

The paper "employ[s] LCM to expedite the generation process ... from around 1000 steps to
approximately 10 steps" (section 4.3). Here the FCSD UNet (and, on request, the TSDM UNet) is
distilled into a LoRA on that UNet, as LCM-LoRA does (Luo et al. 2023), so the undistilled
weights stay in place for ``wo_lcm`` and several variants share one base on disk.

One step, without guidance since the pipeline samples without CFG (as diffusers'
``train_lcm_distill_lora_sd_wds.py`` with w = 1): x_t from the training latent at a solver
timestep t of the 50-step DDIM grid (t = 20 i - 1, the grid LCMScheduler samples from); the
teacher (the UNet with the LoRA disabled) takes one DDIM step to t - 20; the student (LoRA
enabled) at t and the target (the same LoRA without gradient, no EMA: LCM-LoRA's choice) at
t - 20 both map to x_0 through the consistency parametrisation f(x, t) = c_skip(t) x +
c_out(t) x0_pred(x, t) (sigma_data 0.5, timestep scaling 10, as in LCMScheduler); the loss is the
MSE between the two. Only the LoRA learns.

Files: ``<folder>/unet_lcm_lora/`` (FCSD) and ``<folder>/tsdm_unet_lcm_lora/`` (TSDM), each a
``pytorch_lora_weights.safetensors`` in diffusers' LoRA format (``unet.``-prefixed PEFT keys, the
adapter's config with its alpha in the metadata; files without it read as alpha = rank), read back
through diffusers' own LoRA loader. The pipeline uses the distilled weights when it samples with
LCM and the undistilled ones with any other sampler; a user's LoRAs stay on under every sampler
(reference/adapters.py).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from torch import nn

from metrics.errors import CabenchError, WeightsMissingError
from reference.adapters import LORA_WEIGHTS, active_adapters, current_adapters, lora_layers, set_active

SKIP, SIGMA_DATA, TIMESTEP_SCALING = 20, 0.5, 10.0
ADAPTER = "lcm"
LORA_FOLDERS = {"unet": "unet_lcm_lora", "tsdm_unet": "tsdm_unet_lcm_lora"}
COMPONENT_UNETS = {"fcsd": "unet", "tsdm": "tsdm_unet"}
# The layers LCM-LoRA adapts in SD 1.5 (its published adapter's targets), plus the decoupled
# cross-attention's condition projections.
LORA_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "to_k_ip.0", "to_v_ip.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scaled = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


def predicted_x0(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """x_0 from x_t and the predicted noise at cumulative alpha ``alpha`` (broadcast per sample)."""
    return (x - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, alpha_prev: torch.Tensor) -> torch.Tensor:
    """The teacher's solver step: deterministic DDIM from cumulative alpha ``alpha`` to ``alpha_prev``."""
    return alpha_prev.sqrt() * predicted_x0(x, eps, alpha) + (1 - alpha_prev).sqrt() * eps


def consistency_function(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """f(x, t) = c_skip(t) x + c_out(t) x0_pred(x, t): the LCM parametrisation, f(x, 0) = x."""
    c_skip, c_out = boundary_scalings(t)
    return c_skip * x + c_out * predicted_x0(x, eps, alpha)


def add_lcm_lora(unet, rank: int, seed: int) -> None:
    """A fresh LoRA adapter (B = 0, so the student starts as the teacher) on ``unet``.

    A is drawn by peft's own init (Kaiming-uniform) from ``seed`` on a forked generator: the draw
    depends on the seed alone, not on what the process drew before (a new process starts its global
    generator from a random seed, so an unseeded init made every distillation differ), and the
    caller's generator state is left as it was.
    """
    from peft import LoraConfig

    if rank < 1:
        raise CabenchError(f"--lora-rank must be at least 1, got {rank}")
    device = next(unet.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(LORA_TARGETS),
                                    init_lora_weights=True), adapter_name=ADAPTER)


def has_lcm_lora(unet) -> bool:
    return ADAPTER in (getattr(unet, "peft_config", None) or {})


def save_lcm_lora(unet, folder: str | Path) -> Path:
    """The adapter's weights in diffusers' LoRA format: ``folder/pytorch_lora_weights.safetensors``
    (``unet.``-prefixed PEFT keys, the adapter's config in the metadata; reference/adapters.py)."""
    from reference.adapters import save_adapter

    return save_adapter(folder, ADAPTER, unet=unet)


def load_lcm_lora(unet, path: str | Path, scale: float = 1.0, name: str = "unet") -> None:
    """Load an LCM-LoRA file (or a folder holding ``pytorch_lora_weights.safetensors``) onto ``unet``
    as adapter ``lcm``, replacing one loaded before; ``name`` is the component named in errors.

    Reads the published formats through diffusers' own loader (``lora_state_dict``): kohya
    (``lora_unet_...`` keys with ``.alpha``), diffusers (``unet.``-prefixed keys, the adapter config
    in the file's metadata when ``save_lora_weights`` wrote it; the files :func:`save_lcm_lora`
    writes) and a bare PEFT state dict of the UNet (no prefix). Alphas are kept, so each layer's
    scale is alpha / rank as in the file. Files written when the decoupled branch's projections were
    named ``to_k_c`` / ``to_v_c`` load too (reference/attention.py, ``LEGACY_KEYS``).
    """
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    from reference.attention import LEGACY_KEYS

    path = Path(path)
    file = path / LORA_WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise WeightsMissingError(f"LoRA weights {file} do not exist")
    try:
        state, alphas, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(
            str(file.parent), weight_name=file.name, return_lora_metadata=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise CabenchError(f"LoRA weights {file} cannot be read: {error}") from None
    for old, new in LEGACY_KEYS:
        state = {key.replace(old, new): value for key, value in state.items()}
    prefix = "unet" if any(key.startswith("unet.") for key in state) else None
    if prefix is None and any(key.startswith("text_encoder.") for key in state):
        raise CabenchError(f"LoRA weights {file} hold no UNet layers")
    users = [adapter for adapter in current_adapters(unet) if adapter != ADAPTER]
    if has_lcm_lora(unet):
        unet.delete_adapters(ADAPTER)
    mismatch = CabenchError(f"LoRA weights {file}: no layer matches the {name} (wrong base model?)")
    try:
        unet.load_lora_adapter(state, prefix=prefix, network_alphas=alphas, metadata=metadata, adapter_name=ADAPTER)
    except ValueError:  # peft's NoMatchingPeftModuleError among them
        raise mismatch from None
    if not has_lcm_lora(unet):
        raise mismatch
    for layer in lora_layers(unet):
        layer.set_scale(ADAPTER, scale)
    set_active(unet, [*users, ADAPTER])  # the user's active adapters stay on


def load_distilled(pipe, root: str | Path, variant: str | None = None) -> list[str]:
    """Load the LCM-LoRAs of the pipeline folder ``root`` onto the pipeline's UNets: the FCSD's from
    the folder (or from the trained ``variant``'s folder), the TSDM's from the folder. Returns the
    UNets given one."""
    from reference.ablations import variant_folder

    fcsd_folder = Path(root) if variant is None else variant_folder(root, variant)
    loaded = []
    for name, folder in (("unet", fcsd_folder), ("tsdm_unet", Path(root))):
        lora = folder / LORA_FOLDERS[name] / LORA_WEIGHTS
        if lora.is_file():
            load_lcm_lora(getattr(pipe, name), lora, name=name)
            loaded.append(name)
    return loaded


@contextmanager
def lcm_weights(unets, enabled: bool):
    """Run each UNet that has an LCM-LoRA with it on (``enabled``: LCM sampling) or off, beside the
    user's adapters that are active, which stay on either way; each UNet's previous adapter state
    is restored afterwards."""
    with ExitStack() as stack:
        for unet in unets:
            if has_lcm_lora(unet):
                users = [name for name in current_adapters(unet) if name != ADAPTER]
                stack.enter_context(active_adapters(unet, [*users, ADAPTER] if enabled else users))
        yield


class ConsistencyDistillation(nn.Module):
    """``forward(batch, draw) -> loss`` for ``component`` "fcsd" (the pipeline's ``unet`` with its
    ControlNet and f_d) or "tsdm" (``tsdm_unet`` with f_c); the UNet must carry the ``lcm`` adapter."""

    def __init__(self, pipe, component: str = "fcsd"):
        super().__init__()
        if component not in COMPONENT_UNETS:
            raise CabenchError(f"unknown component {component!r}; choose one of: {', '.join(COMPONENT_UNETS)}")
        object.__setattr__(self, "pipe", pipe)  # not a submodule: frozen parts stay out of the saved state
        self.component = component
        self.student = getattr(pipe, COMPONENT_UNETS[component])
        if not has_lcm_lora(self.student):
            raise CabenchError(f"the {component} UNet has no '{ADAPTER}' adapter to distil into")
        for module in (pipe.vae, pipe.text_encoder, pipe.controlnet, pipe.fcsd_encoder, pipe.tsdm_encoder,
                       pipe.unet, pipe.tsdm_unet):
            module.eval().requires_grad_(False)
        for name, param in self.student.named_parameters():
            param.requires_grad_("lora_" in name)
        self.register_buffer("alphas", pipe.scheduler.alphas_cumprod.clone().float(), persistent=False)

    def _conditions(self, batch):
        """(latents of the training target, eps(x, t, lora: bool))."""
        pipe = self.pipe
        with torch.no_grad():
            context = pipe.text_context(batch["image"].shape[0])
            if self.component == "tsdm":
                latents = pipe.encode_latents(pipe.tsd_of(batch["image"]))
                f_c = pipe.tsdm_encoder(pipe.tsd_of(batch["rgb"]), batch["pose"], batch["expression"])
            else:
                latents = pipe.encode_latents(batch["image"])
                control, f_d = pipe.fcsd_condition(batch["normal"], batch["guide"], batch["pose"],
                                                   batch["expression"], batch["emotion"])

        def eps(x, t, lora: bool):
            with lcm_weights([self.student], lora):
                if self.component == "tsdm":
                    return self.student(x, t, context, cross_attention_kwargs={"condition_tokens": f_c}).sample
                return pipe.fcsd_denoiser(control, f_d, context)(x, t)

        return latents, eps

    def _alpha(self, t, like):
        return self.alphas.to(like.device)[t].view(-1, 1, 1, 1)

    def forward(self, batch, draw) -> torch.Tensor:
        latents, eps = self._conditions(batch)
        index = draw.randint(1000 // SKIP) + 1
        t = (index * SKIP - 1).to(latents.device)
        t_prev = (t - SKIP).clamp_min(0)
        noise = draw.randn(latents.shape[1:]).to(latents.device, latents.dtype)
        x_t = self.pipe.scheduler.add_noise(latents, noise, t)

        alpha, alpha_prev = self._alpha(t, x_t), self._alpha(t_prev, x_t)
        student = consistency_function(x_t, eps(x_t, t, lora=True), t, alpha)
        with torch.no_grad():
            x_prev = ddim_step(x_t, eps(x_t, t, lora=False), alpha, alpha_prev)
            target = consistency_function(x_prev, eps(x_prev, t_prev, lora=True), t_prev, alpha_prev)
        return nn.functional.mse_loss(student.float(), target.float())
