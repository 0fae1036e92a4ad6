"""ConsistentAvatarPipeline: stage-1 renders + FLAME pose/expression (+ emotion) in, frames out.

Per batch of frames (paper sections 4.1-4.3):

1. TSD of the coarse stage-1 RGB (reference/tsd.py).
2. TSDM (stage 2) samples the latent of the aligned TSD from noise, conditioned through decoupled
   cross-attention on f_c = [E(TSD), pose, expression]; the VAE decodes it to the aligned TSD'.
3. FCSD (stage 3) samples the frame latent with the SD UNet + a ControlNet fed
   concat(normal, TSD') (6 channels), the UNet also attending to f_d = [E(TSD'), pose,
   expression, emotion]; the UNet's own cross-attention sees the empty-prompt CLIP context.
4. The VAE decodes; an optional SDXL-refiner pass (decode, refiner-VAE encode, a few low-strength
   refiner steps, decode) follows.

No classifier-free guidance is used (LCM sampling runs at guidance 1). LCM sampling uses the
distilled weights (the LCM-LoRAs of ``cabench train distill-lcm``, loaded with the folder) where
there are some; any other sampler uses the undistilled weights.

Ablations (paper rows, reference/ablations.py) are trained FCSD variants:
``from_pretrained(folder, ablation="wo_normal")`` loads one, and the pipeline then builds only the
inputs that variant was trained with (``wo_stage2`` / ``wo_aligned_tsd``: the unaligned TSD and no
TSDM; ``wo_normal``: no normal; ``wo_emotion``: no emotion token). ``wo_lcm`` samples the full
model's undistilled weights with DDIM. ``ablation_mode="zero-input"`` is the inference-time switch
on the full model (a diagnosis, not the paper's ablation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

import reference.models  # noqa: F401  (registers the component classes that from_pretrained loads)
from metrics.errors import CabenchError
from reference.ablations import ABLATIONS, UNALIGNED_TSD, check_pipeline_matches
from reference.lcm import lcm_weights
from reference.schedulers import make_scheduler, scheduler_name
from reference.tsd import tsd

__all__ = ["ABLATIONS", "NEUTRAL", "ConsistentAvatarOutput", "ConsistentAvatarPipeline"]
NEUTRAL = "neutral"


@dataclass
class ConsistentAvatarOutput(BaseOutput):
    """``images`` float (N,3,H,W) in [0,1] (or uint8 (N,H,W,3) for output_type="np"); the rest is
    what reached the models, for inspection and tests."""

    images: object
    proxy_tsd: torch.Tensor
    guide_tsd: torch.Tensor
    control_condition: torch.Tensor
    emotion_embeddings: torch.Tensor


class ConsistentAvatarPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->tsdm_encoder->tsdm_unet->fcsd_encoder->controlnet->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, tsdm_unet, tsdm_encoder, unet, controlnet, fcsd_encoder,
                 scheduler, trained_ablation: str | None = None):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, tsdm_unet=tsdm_unet,
            tsdm_encoder=tsdm_encoder, unet=unet, controlnet=controlnet, fcsd_encoder=fcsd_encoder,
            scheduler=scheduler,
        )
        # the paper row the FCSD was trained as (None: the full model); saved in model_index.json
        self.register_to_config(trained_ablation=trained_ablation)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._text_context: torch.Tensor | None = None
        self._emotion_cache: dict[str, torch.Tensor] = {}
        self.refiner = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, ablation: str | None = None, lcm_lora: bool = True,
                        **kwargs):
        """diffusers' loader, plus: ``ablation`` loads that trained variant's FCSD parts from
        ``ablations/<name>/`` (sharing the folder's VAE, text encoder and TSDM), and ``lcm_lora``
        loads the distilled LCM-LoRAs the folder (and the variant) has."""
        from reference.ablations import saved_ablation, trained_variant, variant_components
        from reference.lcm import load_distilled

        root = Path(pretrained_model_name_or_path)
        variant = trained_variant(ablation)
        if variant == saved_ablation(root):  # the folder is that variant (or the full model) itself
            variant = None
        if variant is not None:
            kwargs.update(variant_components(root, variant, kwargs.get("torch_dtype")), trained_ablation=variant)
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if lcm_lora and root.is_dir():
            load_distilled(pipe, root, variant)
        return pipe

    @property
    def trained_ablation(self) -> str | None:
        return self.config.get("trained_ablation")

    # ----- conditions -------------------------------------------------------------------------
    def set_scheduler(self, name: str) -> None:
        """Swap the sampler: ``ddpm``, ``ddim`` or ``lcm`` (same training noise schedule)."""
        self.scheduler = make_scheduler(name, self.scheduler.config)

    def _tokens(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return ids.to(self.text_encoder.device)

    @torch.no_grad()
    def text_context(self, batch: int) -> torch.Tensor:
        """Empty-prompt CLIP hidden states (1, L, D), cached, expanded to the batch."""
        if self._text_context is None or self._text_context.device != self.text_encoder.device:
            self._text_context = self.text_encoder(self._tokens([""]))[0]
        return self._text_context.to(self.unet.dtype).expand(batch, -1, -1)

    @torch.no_grad()
    def embed_emotions(self, labels: list[str]) -> torch.Tensor:
        """CLIP text embedding (pooled output; 768-d for SD 1.5) of each label, cached per label."""
        missing = sorted({label for label in labels if label not in self._emotion_cache})
        if missing:
            pooled = self.text_encoder(self._tokens(missing))[1]
            self._emotion_cache.update(dict(zip(missing, pooled)))
        return torch.stack([self._emotion_cache[label] for label in labels])

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] -> scaled VAE latents (posterior mean: deterministic)."""
        vae_in = images.to(self.vae.device, self.vae.dtype) * 2 - 1
        return self.vae.encode(vae_in).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [0,1], float32."""
        out = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return ((out.float() + 1) / 2).clamp(0, 1)

    # ----- sampling ---------------------------------------------------------------------------
    def _sample(self, denoise, scheduler, shape, steps: int, generator, desc: str, progress: bool) -> torch.Tensor:
        """Generic reverse process: ``denoise(latents, t) -> eps`` for each timestep of ``scheduler``."""
        device, dtype = self.unet.device, self.unet.dtype
        scheduler.set_timesteps(steps, device=device)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents * scheduler.init_noise_sigma
        for t in tqdm(scheduler.timesteps, desc=desc, disable=not progress, leave=False):
            model_in = scheduler.scale_model_input(latents, t)
            eps = denoise(model_in, t)
            extra = {"generator": generator} if _takes_generator(scheduler) else {}
            latents = scheduler.step(eps, t, latents, **extra, return_dict=False)[0]
        return latents

    @torch.no_grad()
    def align_tsd(self, proxy_tsd, pose, expression, steps: int, generator=None, scheduler=None,
                  progress: bool = False) -> torch.Tensor:
        """Stage 2 (TSDM): the aligned TSD' in [0,1] from the proxy TSD, pose and expression."""
        scheduler = scheduler or make_scheduler(scheduler_name(self.scheduler), self.scheduler.config)
        n, _, h, w = proxy_tsd.shape
        f_c = self.tsdm_encoder(proxy_tsd, pose, expression).to(self.tsdm_unet.dtype)
        context = self.text_context(n)
        shape = (n, self.tsdm_unet.config.in_channels, h // self.vae_scale_factor, w // self.vae_scale_factor)

        def denoise(x, t):
            return self.tsdm_unet(x, t, context, cross_attention_kwargs={"condition_tokens": f_c},
                                  return_dict=False)[0]

        latents = self._sample(denoise, scheduler, shape, steps, generator, "TSDM", progress)
        return self.decode_latents(latents)

    def fcsd_denoiser(self, control_condition, f_d, context):
        """eps(x_t, t) of stage 3: ControlNet residuals into the decoupled-attention UNet."""

        def denoise(x, t):
            down, mid = self.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=control_condition,
                                        return_dict=False)
            return self.unet(x, t, context, cross_attention_kwargs={"condition_tokens": f_d},
                             down_block_additional_residuals=down, mid_block_additional_residual=mid,
                             return_dict=False)[0]

        return denoise

    def fcsd_condition(self, normal, guide, pose, expression, emotions):
        """(ControlNet condition, f_d) for the inputs this FCSD was trained with: concat(normal, TSD)
        or, for a variant trained without the normal, the TSD alone; f_d with the emotion token
        unless the variant was trained without it. An input the variant lacks is never read."""
        dtype = self.unet.dtype
        takes_normal = self.controlnet.config.conditioning_channels == 6
        control = torch.cat([normal, guide], dim=1) if takes_normal else guide
        takes_emotion = self.fcsd_encoder.num_tokens == 4
        f_d = self.fcsd_encoder(guide, pose, expression, emotions if takes_emotion else None)
        return control.to(dtype), f_d.to(dtype)

    def prepare_conditions(self, rgb, normal, pose, expression, emotion=None, ablation=None, tsdm_steps=4,
                           generator=None, scheduler_kind=None, progress=False, ablation_mode="trained"):
        """Everything stage 3 sees: (proxy TSD, guide TSD, control condition, emotion, f_d)."""
        check_pipeline_matches(self.trained_ablation, ablation, ablation_mode)
        device = self.unet.device
        n = rgb.shape[0]
        rgb, normal = rgb.to(device, torch.float32), normal.to(device, torch.float32)
        pose, expression = pose.to(device, torch.float32), expression.to(device, torch.float32)
        proxy = tsd(rgb)
        if ablation in UNALIGNED_TSD:
            guide = proxy  # no stage 2: the unaligned TSD of the stage-1 RGB
        else:
            kind = scheduler_kind or scheduler_name(self.scheduler)
            guide = self.align_tsd(proxy, pose, expression, tsdm_steps, generator,
                                   make_scheduler(kind, self.scheduler.config), progress)
        switched = ablation if ablation_mode == "zero-input" else None
        if switched == "wo_normal":
            normal = torch.zeros_like(normal)
        labels = [NEUTRAL] * n if emotion is None else list(emotion)
        if len(labels) != n:
            raise CabenchError(f"emotion: {len(labels)} labels for {n} frames")
        emotions = self.embed_emotions(labels).float()
        if switched == "wo_emotion":
            emotions = torch.zeros_like(emotions)
        control, f_d = self.fcsd_condition(normal, guide, pose, expression, emotions)
        return proxy, guide, control, emotions, f_d

    @torch.no_grad()
    def __call__(
        self,
        rgb: torch.Tensor,
        normal: torch.Tensor,
        pose: torch.Tensor,
        expression: torch.Tensor,
        emotion: list[str] | None = None,
        num_inference_steps: int = 4,
        tsdm_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        ablation: str | None = None,
        ablation_mode: str = "trained",
        refiner_strength: float = 0.0,
        refiner_steps: int = 4,
        output_type: str = "pt",
        progress: bool = False,
    ) -> ConsistentAvatarOutput:
        """Render frames: rgb/normal float (N,3,H,W) in [0,1], pose (N,6), expression (N,100)."""
        if rgb.ndim != 4 or rgb.shape[1] != 3 or normal.shape != rgb.shape:
            raise CabenchError(f"rgb and normal must both be (N,3,H,W); got {tuple(rgb.shape)} and {tuple(normal.shape)}")
        n, _, h, w = rgb.shape
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise CabenchError(f"frame size {h}x{w} must be a multiple of {self.vae_scale_factor}")
        scheduler = self.scheduler
        if ablation == "wo_lcm":
            scheduler = make_scheduler("ddim", self.scheduler.config)
        with lcm_weights([self.tsdm_unet, self.unet], enabled=scheduler_name(scheduler) == "lcm"):
            proxy, guide, control, emotions, f_d = self.prepare_conditions(
                rgb, normal, pose, expression, emotion, ablation, tsdm_steps or num_inference_steps, generator,
                scheduler_name(scheduler), progress, ablation_mode)
            context = self.text_context(n)
            shape = (n, self.unet.config.in_channels, h // self.vae_scale_factor, w // self.vae_scale_factor)
            latents = self._sample(self.fcsd_denoiser(control, f_d, context), scheduler, shape,
                                   num_inference_steps, generator, "FCSD", progress)
        images = self.decode_latents(latents)
        if refiner_strength > 0:
            images = self.refine(images, refiner_strength, refiner_steps, generator)
        if output_type == "np":
            images = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
        return ConsistentAvatarOutput(images, proxy, guide, control, emotions)

    # ----- refiner ----------------------------------------------------------------------------
    def load_refiner(self, refiner) -> None:
        """Attach an SDXL refiner: a StableDiffusionXLImg2ImgPipeline or the path of its folder."""
        from pathlib import Path

        from diffusers import StableDiffusionXLImg2ImgPipeline

        if isinstance(refiner, (str, Path)):
            if not Path(refiner).is_dir():
                raise CabenchError(f"SDXL refiner folder {refiner} does not exist")
            refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(refiner)
        refiner.set_progress_bar_config(disable=True)
        self.refiner = refiner.to(self.device)

    @torch.no_grad()
    def refine(self, images: torch.Tensor, strength: float, steps: int, generator=None) -> torch.Tensor:
        """Low-strength SDXL-refiner img2img: refiner-VAE encode, a few refiner steps, decode."""
        if self.refiner is None:
            raise CabenchError("refiner_strength > 0 needs an SDXL refiner: call load_refiner(path) first")
        out = self.refiner(prompt=[""] * images.shape[0], image=images, strength=strength,
                           num_inference_steps=steps, guidance_scale=1.0, generator=generator,
                           output_type="pt").images
        return out.float().clamp(0, 1)

    # ----- LCM-LoRA ---------------------------------------------------------------------------
    def load_lcm_lora(self, path, adapter_name: str = "lcm", scale: float = 1.0) -> None:
        """Load LCM-LoRA weights (a PEFT / diffusers LoRA file for the FCSD UNet) and switch to LCM."""
        from pathlib import Path

        if not Path(path).exists():
            raise CabenchError(f"LoRA weights {path} do not exist")
        self.unet.load_lora_adapter(str(path), prefix=None, adapter_name=adapter_name)
        self.unet.set_adapters([adapter_name], weights=[scale])
        self.set_scheduler("lcm")


def _takes_generator(scheduler) -> bool:
    import inspect

    return "generator" in inspect.signature(scheduler.step).parameters
