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

diffusers conventions: ``pipe.scheduler`` may be any diffusers scheduler whose model output is
noise (``EulerDiscreteScheduler.from_config(pipe.scheduler.config)`` and the like); TSDM samples
with a fresh scheduler of the same class and config. ``output_type`` is ``"pt"`` (the default
here: the harness works on tensors), ``"np"``, ``"pil"`` or ``"latent"``; ``generator`` is one
generator or one per frame; ``callback_on_step_end`` is called after each FCSD step; the progress
bar follows ``set_progress_bar_config``; ``enable_model_cpu_offload()`` works (tensors are made on
``_execution_device``). The empty-prompt context and the emotion embeddings can be passed in
(``prompt_embeds``, ``emotion_embeds``) so a caller rendering a sequence in batches computes them
once; within a call the ControlNet's condition embedding is computed once for all FCSD steps.

Distilled and undistilled weights: the distilled weights are LCM-LoRAs on ``unet`` / ``tsdm_unet``:
those of ``cabench train distill-lcm``, which ``from_pretrained`` loads with the folder
(reference/lcm.py), or a published LCM-LoRA file loaded with :meth:`load_lcm_lora`. The LCM
sampler runs with the LoRA on; every other sampler with it off (the undistilled weights).
``lcm_lora=False`` (a call's argument) switches it off under LCM too: the LCM sampler on the
undistilled weights, the comparison that shows what the distillation buys; it changes nothing under
any other sampler. When
``num_inference_steps`` is not given, LCM samples 10 steps, as the paper does.

No classifier-free guidance is used (LCM sampling runs at guidance 1).

Ablations (paper rows, reference/ablations.py) are trained FCSD variants:
``from_pretrained(folder, ablation="wo_normal")`` loads one, and the pipeline then builds only the
inputs that variant was trained with (``wo_stage2`` / ``wo_aligned_tsd``: the unaligned TSD and no
TSDM; ``wo_normal``: no normal; ``wo_emotion``: no emotion token). ``wo_lcm`` is the full model's
undistilled weights with their usual sampler, DDIM at 50 steps unless ``num_inference_steps`` says
otherwise. ``ablation_mode="zero-input"`` is the inference-time switch on the full model (a
diagnosis, not the paper's ablation).
"""

from __future__ import annotations

import inspect
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

import reference.models  # noqa: F401  (registers the component classes that from_pretrained loads)
from metrics.errors import CabenchError
from reference.ablations import ABLATIONS, UNALIGNED_TSD, check_pipeline_matches
from reference.adapters import (
    ADAPTER_MODELS,
    USER_LORAS,
    base_weights_only,
    load_user_adapters,
    save_user_adapters,
)
from reference.attention import check_condition_branch
from reference.lcm import ADAPTER as LCM_ADAPTER
from reference.lcm import LORA_FOLDERS, has_lcm_lora, lcm_weights, load_lcm_lora, save_lcm_lora
from reference.schedulers import (
    UNDISTILLED_SAMPLER,
    check_noise_prediction,
    checkpoint_sampler,
    default_steps,
    is_lcm,
    make_scheduler,
)
from reference.tsd import PAPER_CUTOFF, tsd

__all__ = ["ABLATIONS", "NEUTRAL", "ConsistentAvatarOutput", "ConsistentAvatarPipeline"]
NEUTRAL = "neutral"
EMOTION_DB = "emotion_db"  # the folder's expression database (reference.emotion)
OUTPUT_TYPES = ("pt", "np", "pil", "latent")


@dataclass
class ConsistentAvatarOutput(BaseOutput):
    """``images`` as ``output_type`` asked (float (N,3,H,W) in [0,1] for "pt"); the rest is what reached
    the models, for inspection and tests."""

    images: object
    proxy_tsd: torch.Tensor
    guide_tsd: torch.Tensor
    control_condition: torch.Tensor
    emotion_embeddings: torch.Tensor


class ConsistentAvatarPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    model_cpu_offload_seq = "text_encoder->tsdm_encoder->tsdm_unet->fcsd_encoder->controlnet->unet->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, vae, text_encoder, tokenizer, tsdm_unet, tsdm_encoder, unet, controlnet, fcsd_encoder,
                 scheduler, trained_ablation: str | None = None, tsd_cutoff: float = PAPER_CUTOFF):
        super().__init__()
        if tsdm_unet.config.get("shares_base_with") == "unet":
            tsdm_unet.tie_base(unet)  # sd15: the TSDM runs on the FCSD's frozen SD UNet (one copy)
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, tsdm_unet=tsdm_unet,
            tsdm_encoder=tsdm_encoder, unet=unet, controlnet=controlnet, fcsd_encoder=fcsd_encoder,
            scheduler=scheduler,
        )
        # the paper row the FCSD was trained as (None: the full model); saved in model_index.json
        self.register_to_config(trained_ablation=trained_ablation)
        # the TSD's high-pass cutoff D the models were trained with (reference.tsd); saved in model_index.json
        self.register_to_config(tsd_cutoff=float(tsd_cutoff))
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.refiner = None
        self.emotion_database = None  # reference.emotion.ExpressionDatabase the FCSD was trained with, if any

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, ablation: str | None = None, lcm_lora: bool = True,
                        **kwargs):
        """diffusers' loader, plus: ``ablation`` loads that trained variant's FCSD parts from
        ``ablations/<name>/`` (sharing the folder's VAE, text encoder and TSDM), and ``lcm_lora``
        loads the distilled LCM-LoRAs the folder (and the variant) has, used when the pipeline
        samples with LCM."""
        from reference.ablations import saved_ablation, trained_variant, variant_components
        from reference.lcm import load_distilled

        root = Path(pretrained_model_name_or_path)
        variant = trained_variant(ablation)
        if variant == saved_ablation(root):  # the folder is that variant (or the full model) itself
            variant = None
        if variant is not None:
            kwargs.update(variant_components(root, variant, kwargs.get("torch_dtype")), trained_ablation=variant)
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if root.is_dir():
            if lcm_lora:
                load_distilled(pipe, root, variant)
            load_user_adapters(pipe, root, dropped=() if lcm_lora else (LCM_ADAPTER,))
        pipe.scheduler = checkpoint_sampler(pipe.scheduler, distilled=has_lcm_lora(pipe.unet))
        if (root / EMOTION_DB).is_dir():
            from reference.emotion import ExpressionDatabase

            pipe.emotion_database = ExpressionDatabase.from_folder(root / EMOTION_DB)
        return pipe

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' save, with each model's base weights in its own folder and every LoRA adapter in a
        LoRA folder of diffusers' format (reference/adapters.py): the LCM-LoRAs in
        ``unet_lcm_lora/`` and ``tsdm_unet_lcm_lora/``, a user's in ``loras/<name>/`` with the adapter
        state (active adapters, weights) in ``loras/adapters.json``. LoRA folders left in
        ``save_directory`` by an earlier save are replaced, so the folder loads as this pipeline."""
        folder = Path(save_directory)
        with base_weights_only([getattr(self, name) for name in ADAPTER_MODELS]):
            super().save_pretrained(save_directory, *args, **kwargs)
        for stale in [folder / sub for sub in LORA_FOLDERS.values()] + [folder / USER_LORAS]:
            if stale.is_dir():
                shutil.rmtree(stale)
        for name, sub in LORA_FOLDERS.items():
            if has_lcm_lora(getattr(self, name)):
                save_lcm_lora(getattr(self, name), folder / sub)
        save_user_adapters(self, folder, skip=LCM_ADAPTER)
        if (folder / EMOTION_DB).is_dir():
            shutil.rmtree(folder / EMOTION_DB)
        if self.emotion_database is not None:
            self.emotion_database.save(folder / EMOTION_DB)

    @property
    def trained_ablation(self) -> str | None:
        return self.config.get("trained_ablation")

    # ----- conditions -------------------------------------------------------------------------
    def set_scheduler(self, name: str) -> None:
        """Swap the sampler by name (reference/schedulers.py), keeping the training noise schedule."""
        self.scheduler = make_scheduler(name, self.scheduler.config)

    def _tokens(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return ids.to(self._execution_device)

    @torch.no_grad()
    def encode_empty_prompt(self) -> torch.Tensor:
        """Empty-prompt CLIP hidden states (1, L, D) in the UNet's dtype: the UNets' own text context."""
        return self.text_encoder(self._tokens([""]))[0].to(self.unet.dtype)

    def tsd_of(self, images: torch.Tensor) -> torch.Tensor:
        """TSD maps of ``images`` (N,3,H,W) at the cutoff the pipeline was trained with (``tsd_cutoff``)."""
        return tsd(images, cutoff=float(self.config.get("tsd_cutoff", PAPER_CUTOFF)))

    def text_context(self, batch: int) -> torch.Tensor:
        """The empty-prompt context expanded to ``batch`` rows (B, L, D)."""
        return self.encode_empty_prompt().expand(batch, -1, -1)

    @torch.no_grad()
    def embed_emotions(self, labels: list[str]) -> torch.Tensor:
        """CLIP text embedding (pooled output; 768-d for SD 1.5) of each label; each distinct label once."""
        distinct = sorted(set(labels))
        pooled = self.text_encoder(self._tokens(distinct))[1]
        index = torch.tensor([distinct.index(label) for label in labels], device=pooled.device)
        return pooled[index]

    def emotion_labels(self, emotion, count: int, expression=None) -> list[str]:
        """Per-frame labels: one string labels every frame, a list one per frame; none: each frame's label
        from its ``expression`` (N, 100) by the pipeline's emotion database (``emotion_db/``, the one its
        FCSD was trained with), else "neutral"."""
        if emotion is None and self.emotion_database is not None and expression is not None:
            return self.emotion_database.label(torch.as_tensor(expression).detach().cpu().float().numpy())
        if emotion is None:
            return [NEUTRAL] * count
        if isinstance(emotion, str):
            return [emotion] * count
        labels = list(emotion)
        if len(labels) != count:
            raise CabenchError(f"emotion: {len(labels)} labels for {count} frames")
        return labels

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] -> scaled VAE latents (posterior mean: deterministic)."""
        vae_in = images.to(self.vae.device, self.vae.dtype) * 2 - 1
        return self.vae.encode(vae_in).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [0,1], float32 (the arithmetic of diffusers' pipelines)."""
        out = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
        return self.image_processor.denormalize(out.float())

    # ----- sampling ---------------------------------------------------------------------------
    def latent_shape(self, unet, count: int, height: int, width: int) -> tuple[int, int, int, int]:
        """The shape of ``unet``'s latents for ``count`` frames of ``height`` x ``width`` pixels."""
        return (count, unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)

    def _sample(self, denoise, scheduler, shape, steps: int, generator, dtype, callback=None,
                callback_inputs=("latents",), latents=None) -> torch.Tensor:
        """Generic reverse process: ``denoise(latents, t) -> eps`` for each timestep of ``scheduler``, from
        ``latents`` (unit Gaussian noise of ``shape``, as diffusers' pipelines take it) or noise drawn from
        ``generator``; either is scaled by the scheduler's ``init_noise_sigma``."""
        device = self._execution_device
        scheduler.set_timesteps(steps, device=device)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != tuple(shape):
            raise CabenchError(f"latents: shape {tuple(latents.shape)}, expected {tuple(shape)}")
        else:
            latents = latents.to(device, dtype)
        latents = latents * scheduler.init_noise_sigma
        extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        with self.progress_bar(total=len(scheduler.timesteps)) as bar:
            for i, t in enumerate(scheduler.timesteps):
                eps = denoise(scheduler.scale_model_input(latents, t), t)
                latents = scheduler.step(eps, t, latents, **extra, return_dict=False)[0]
                if callback is not None:
                    values = callback(self, i, t, {name: {"latents": latents}[name] for name in callback_inputs})
                    latents = values.pop("latents", latents)
                bar.update()
        return latents

    @torch.no_grad()
    def align_tsd(self, proxy_tsd, pose, expression, steps: int, generator=None, scheduler=None,
                  prompt_embeds=None, unet=None, lcm_lora: bool = True) -> torch.Tensor:
        """Stage 2 (TSDM): the aligned TSD' in [0,1] from the proxy TSD, pose and expression.

        ``scheduler``: a scheduler (copied: its state is not touched) or a name; default the pipeline's.
        ``lcm_lora``: the LCM-LoRA samples under LCM (False: the undistilled weights; module docstring).
        """
        scheduler = _fresh(scheduler if scheduler is not None else self.scheduler, self.scheduler.config)
        unet = unet or self.tsdm_unet
        n, _, h, w = proxy_tsd.shape
        f_c = self.tsdm_encoder(proxy_tsd, pose, expression).to(unet.dtype)
        context = (self.encode_empty_prompt() if prompt_embeds is None else prompt_embeds).to(unet.dtype)
        context = context.expand(n, -1, -1)
        shape = self.latent_shape(unet, n, h, w)

        def denoise(x, t):
            return unet(x, t, encoder_hidden_states=context, added_cond_kwargs={"image_embeds": [f_c]},
                        return_dict=False)[0]

        with lcm_weights([unet], enabled=lcm_lora and is_lcm(scheduler)):
            latents = self._sample(denoise, scheduler, shape, steps, generator, unet.dtype)
        return self.decode_latents(latents)

    def fcsd_denoiser(self, control_condition, f_d, context, unet=None):
        """eps(x_t, t) of stage 3: ControlNet residuals into the decoupled-attention UNet."""
        unet = unet or self.unet

        def denoise(x, t):
            down, mid = self.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=control_condition,
                                        return_dict=False)
            return unet(x, t, encoder_hidden_states=context, added_cond_kwargs={"image_embeds": [f_d]},
                        down_block_additional_residuals=down, mid_block_additional_residual=mid,
                        return_dict=False)[0]

        return denoise

    @torch.no_grad()
    def sample_fcsd(self, control_condition, f_d, steps: int, generator=None, scheduler=None, prompt_embeds=None,
                    unet=None, callback_on_step_end=None, callback_on_step_end_tensor_inputs=("latents",),
                    lcm_lora: bool = True, latents=None):
        """Stage 3 (FCSD): frame latents from the control condition and f_d (uses ``scheduler`` itself);
        ``lcm_lora`` as in :meth:`align_tsd`; ``latents``: the initial noise (:meth:`_sample`)."""
        scheduler = scheduler if scheduler is not None else self.scheduler
        unet = unet or self.unet
        n, _, h, w = control_condition.shape
        context = (self.encode_empty_prompt() if prompt_embeds is None else prompt_embeds).to(unet.dtype)
        context = context.expand(n, -1, -1)
        shape = self.latent_shape(unet, n, h, w)
        with lcm_weights([unet], enabled=lcm_lora and is_lcm(scheduler)), \
                controlnet_condition_once(self.controlnet, control_condition.to(unet.dtype)) as embedded:
            denoise = self.fcsd_denoiser(embedded, f_d.to(unet.dtype), context, unet)
            return self._sample(denoise, scheduler, shape, steps, generator, unet.dtype, callback_on_step_end,
                                tuple(callback_on_step_end_tensor_inputs), latents)

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

    def prepare_conditions(self, rgb, normal, pose, expression, emotion=None, ablation=None, tsdm_steps=None,
                           generator=None, scheduler=None, prompt_embeds=None, emotion_embeds=None,
                           ablation_mode="trained", lcm_lora: bool = True):
        """Everything stage 3 sees: (proxy TSD, guide TSD, control condition, emotion, f_d).

        ``scheduler``: TSDM's sampler (a scheduler, copied, or a name; default the pipeline's);
        ``tsdm_steps`` default: that sampler's usual count. ``ablation`` must be one this pipeline
        can render (its trained variant, ``wo_lcm``, or any row with ``ablation_mode="zero-input"``).
        ``lcm_lora``: TSDM's LCM-LoRA switch (:meth:`align_tsd`).
        """
        check_pipeline_matches(self.trained_ablation, ablation, ablation_mode)
        device = self._execution_device
        n = rgb.shape[0]
        rgb, normal = rgb.to(device, torch.float32), normal.to(device, torch.float32)
        pose, expression = pose.to(device, torch.float32), expression.to(device, torch.float32)
        proxy = self.tsd_of(rgb)
        if ablation in UNALIGNED_TSD:
            guide = proxy  # no stage 2: the unaligned TSD of the stage-1 RGB
        else:
            scheduler = _fresh(scheduler if scheduler is not None else self.scheduler, self.scheduler.config)
            guide = self.align_tsd(proxy, pose, expression, tsdm_steps or default_steps(scheduler), generator,
                                   scheduler, prompt_embeds, lcm_lora=lcm_lora)
        switched = ablation if ablation_mode == "zero-input" else None
        if switched == "wo_normal":
            normal = torch.zeros_like(normal)
        if emotion_embeds is None:
            emotion_embeds = self.embed_emotions(self.emotion_labels(emotion, n, expression))
        elif emotion_embeds.shape[0] != n:
            raise CabenchError(f"emotion_embeds: {emotion_embeds.shape[0]} rows for {n} frames")
        emotions = emotion_embeds.to(device).float()
        if switched == "wo_emotion":
            emotions = torch.zeros_like(emotions)
        control, f_d = self.fcsd_condition(normal, guide, pose, expression, emotions)
        return proxy, guide, control, emotions, f_d

    def sampler_for(self, ablation: str | None, scheduler=None):
        """The FCSD sampler of a call: for ``wo_lcm`` the undistilled one (fresh); else ``scheduler`` (a
        name or a scheduler, made fresh from the pipeline's training schedule, so the pipeline's own is
        never changed and callers sharing one pipeline cannot affect each other) or the pipeline's."""
        if ablation == "wo_lcm":
            scheduler = make_scheduler(UNDISTILLED_SAMPLER, self.scheduler.config)
        else:
            scheduler = self.scheduler if scheduler is None else _fresh(scheduler, self.scheduler.config)
        check_noise_prediction(scheduler)
        return scheduler

    @torch.no_grad()
    def __call__(
        self,
        rgb: torch.Tensor,
        normal: torch.Tensor,
        pose: torch.Tensor,
        expression: torch.Tensor,
        emotion: str | list[str] | None = None,
        num_inference_steps: int | None = None,
        tsdm_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        ablation: str | None = None,
        ablation_mode: str = "trained",
        refiner_strength: float = 0.0,
        refiner_steps: int = 4,
        output_type: str = "pt",
        return_dict: bool = True,
        prompt_embeds: torch.Tensor | None = None,
        emotion_embeds: torch.Tensor | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] | tuple[str, ...] = ("latents",),
        scheduler=None,
        lcm_lora: bool = True,
        latents: torch.Tensor | None = None,
    ):
        """Render frames: rgb/normal float (N,3,H,W) in [0,1], pose (N,6), expression (N,100).

        ``num_inference_steps`` (FCSD) and ``tsdm_steps`` default to the sampler's usual count (LCM 10).
        ``prompt_embeds`` (1 or N, L, D) and ``emotion_embeds`` (N, D) replace the empty-prompt
        context and the embeddings of ``emotion``. ``ablation`` / ``ablation_mode``: the paper row
        to render (see the module docstring). ``scheduler``: this call's sampler (a name of
        reference/schedulers.py or a scheduler; default the pipeline's, ``pipe.scheduler``), made
        fresh for the call (see :meth:`sampler_for`). ``lcm_lora=False``: LCM samples the undistilled
        weights, both TSDM and FCSD (the module docstring; no effect under other samplers). ``latents``
        (N, C, H/f, W/f): the FCSD's initial noise, unit Gaussian, as diffusers' pipelines take it (default:
        drawn from ``generator`` after the TSDM has drawn its own); the same ``latents`` under two samplers
        start stage 3 from the same noise, whatever the TSDM's sampler drew. Returns
        :class:`ConsistentAvatarOutput`, or its fields as a tuple with ``return_dict=False``.
        """
        if rgb.ndim != 4 or rgb.shape[1] != 3 or normal.shape != rgb.shape:
            raise CabenchError(f"rgb and normal must both be (N,3,H,W); got {tuple(rgb.shape)} and {tuple(normal.shape)}")
        n, _, h, w = rgb.shape
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise CabenchError(f"frame size {h}x{w} must be a multiple of {self.vae_scale_factor}")
        expected = self.latent_shape(self.unet, n, h, w)
        if latents is not None and tuple(latents.shape) != expected:
            raise CabenchError(f"latents: shape {tuple(latents.shape)}, expected {expected} for {n} frames of {h}x{w}")
        if output_type not in OUTPUT_TYPES:
            raise CabenchError(f"output_type {output_type!r}; choose one of: {', '.join(OUTPUT_TYPES)}")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise CabenchError(f"callback_on_step_end_tensor_inputs: {sorted(unknown)} are not among "
                               f"{self._callback_tensor_inputs}")
        check_pipeline_matches(self.trained_ablation, ablation, ablation_mode)
        scheduler = self.sampler_for(ablation, scheduler)
        steps = num_inference_steps or default_steps(scheduler)
        for model in (self.tsdm_unet, self.unet):
            check_condition_branch(model)
        context = self.encode_empty_prompt() if prompt_embeds is None else prompt_embeds.to(self._execution_device)
        proxy, guide, control, emotions, f_d = self.prepare_conditions(
            rgb, normal, pose, expression, emotion, ablation, tsdm_steps or steps, generator, scheduler, context,
            emotion_embeds, ablation_mode, lcm_lora)
        latents = self.sample_fcsd(control, f_d, steps, generator, scheduler, context, self.unet,
                                   callback_on_step_end, callback_on_step_end_tensor_inputs, lcm_lora, latents)
        if output_type == "latent":
            images = latents
        else:
            images = self.decode_latents(latents)
            if refiner_strength > 0:
                images = self.refine(images, refiner_strength, refiner_steps, generator)
            images = self.image_processor.postprocess(images, output_type=output_type, do_denormalize=[False] * n)
        self.maybe_free_model_hooks()
        output = ConsistentAvatarOutput(images, proxy, guide, control, emotions)
        return output if return_dict else output.to_tuple()

    # ----- refiner ----------------------------------------------------------------------------
    def load_refiner(self, refiner) -> None:
        """Attach an SDXL refiner: a StableDiffusionXLImg2ImgPipeline or the path of its folder."""
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
    def load_lcm_lora(self, path, component: str = "unet", scale: float = 1.0) -> None:
        """Load an LCM-LoRA file into ``component`` ("unet": FCSD, or "tsdm_unet") and switch to LCM.

        The published kohya and diffusers formats are read (:func:`reference.lcm.load_lcm_lora`, the
        loader ``from_pretrained`` uses for a folder's distilled weights too).
        """
        if component not in LORA_FOLDERS:
            raise CabenchError(f"load_lcm_lora: component {component!r}; choose one of: {', '.join(LORA_FOLDERS)}")
        path = Path(path)
        if not path.is_file():
            raise CabenchError(f"LoRA weights {path} do not exist")
        load_lcm_lora(getattr(self, component), path, scale, component)
        self.set_scheduler("lcm")


@contextmanager
def controlnet_condition_once(controlnet, condition: torch.Tensor):
    """The ControlNet's conditioning embedding (a conv stack on the full-size 6-channel condition) is the
    same at every step: compute it once, and within the block let the ControlNet take the embedding as
    its condition (its embedding module is an identity meanwhile, restored on exit). Same arithmetic
    as computing it at each step, as diffusers' pipeline does."""
    embedding = controlnet.controlnet_cond_embedding
    if controlnet.config.controlnet_conditioning_channel_order != "rgb":  # the channel flip precedes the embedding
        yield condition
        return
    embedded = embedding(condition)
    controlnet.controlnet_cond_embedding = torch.nn.Identity()
    try:
        yield embedded
    finally:
        controlnet.controlnet_cond_embedding = embedding


def _fresh(scheduler, training_config):
    """A new scheduler of the same class and config (a name makes one from the training config)."""
    if isinstance(scheduler, str):
        return make_scheduler(scheduler, training_config)
    check_noise_prediction(scheduler)
    return type(scheduler).from_config(scheduler.config)
