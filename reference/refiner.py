"""SDXL-refiner pass (paper section 4.3): a real refiner from a local folder, or tiny SDXL-style parts.

The refiner cannot take SD 1.5 latents (its VAE differs: scale 0.13025 against 0.18215), so the
pass decodes the frame, encodes it with the refiner's VAE, runs a few low-strength img2img refiner
steps (``StableDiffusionXLImg2ImgPipeline``, empty prompt, no guidance) and decodes
(:meth:`ConsistentAvatarPipeline.refine`). :func:`tiny_refiner` builds the same structure at toy
size (text-time conditioning with an aesthetic score, one projected CLIP text encoder) for tests.
"""

from __future__ import annotations


def tiny_refiner(seed: int = 0):
    """A random-init StableDiffusionXLImg2ImgPipeline shaped like the SDXL refiner, for 64 px frames."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from reference.config import tiny_vae
    from reference.tokenizer import BOS_ID, EOS_ID, TINY_VOCAB_SIZE, tiny_clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, norm_num_groups=8,
        projection_class_embeddings_input_dim=32 + 5 * 8,  # pooled text + (size, crop, aesthetic score)
    )
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=TINY_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, projection_dim=32, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID))
    vae: AutoencoderKL = tiny_vae()
    vae.register_to_config(scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, text_encoder_2=text_encoder_2, tokenizer=None,
        tokenizer_2=tiny_clip_tokenizer(16), unet=unet, scheduler=scheduler, requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=True,
    )
