"""Model configurations: ``tiny`` (random init, CPU, seconds) and ``sd15`` (a local SD 1.5 folder).

``build_components(config, sd_path)`` returns the pipeline's components. ``sd15`` loads
``vae``, ``unet``, ``text_encoder``, ``tokenizer`` and ``scheduler`` from the SD 1.5 folder with
``from_pretrained``; both UNets (TSDM, FCSD) start from the SD UNet (the TSDM sharing the FCSD's
frozen copy), the ControlNet is initialised from it with a 6-channel condition (normal + TSD), and E
is an ImageNet ResNet-18 read from a local weight file. ``tiny`` builds the same graph at toy width, with the offline byte tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metrics.errors import CabenchError, WeightsMissingError


@dataclass(frozen=True)
class TrainDefaults:
    """Paper defaults (section 5.1): stage 2 Adam 1e-5 x 3000, stage 3 Adam 1e-4 x 15000, batch 4."""

    steps: int
    learning_rate: float
    batch_size: int = 4


@dataclass(frozen=True)
class ModelConfig:
    name: str
    resolution: int
    condition_dim: int
    encoder: str
    train_unet_base: bool  # tiny: the whole UNet learns; sd15: SD stays frozen, new parts learn
    text_length: int
    controlnet_embedding_channels: tuple[int, ...]
    train: dict[str, TrainDefaults] = field(default_factory=dict)
    lcm_lora_rank: int = 64  # distill-lcm: the published SD 1.5 LCM-LoRA's rank


PAPER_TRAIN = {
    "vae": TrainDefaults(0, 1e-3),
    "stage2": TrainDefaults(3000, 1e-5),
    "stage3": TrainDefaults(15000, 1e-4),
    "distill-lcm": TrainDefaults(4000, 1e-6),
    "rig": TrainDefaults(50000, 1e-4),
}

CONFIGS = {
    "tiny": ModelConfig(
        name="tiny",
        resolution=64,
        condition_dim=32,
        encoder="tiny",
        train_unet_base=True,
        text_length=16,
        controlnet_embedding_channels=(16, 32, 32),
        lcm_lora_rank=8,  # a fifth of the tiny UNet's size, so the ablation variants' LoRAs fit beside it
        train={
            "vae": TrainDefaults(400, 2e-3, 4),
            "stage2": TrainDefaults(400, 1e-3, 8),
            "stage3": TrainDefaults(800, 1e-3, 8),
            "distill-lcm": TrainDefaults(100, 1e-4, 8),
            "rig": TrainDefaults(300, 1e-3, 8),
        },
    ),
    "sd15": ModelConfig(
        name="sd15",
        resolution=512,
        condition_dim=256,
        encoder="resnet18",
        train_unet_base=False,
        text_length=77,
        controlnet_embedding_channels=(16, 32, 96, 256),
        train=PAPER_TRAIN,
    ),
}


def get_config(name: str) -> ModelConfig:
    if name not in CONFIGS:
        raise CabenchError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return CONFIGS[name]


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=64,
        mid_block_add_attention=False,
    )


def tiny_unet_kwargs() -> dict:
    return dict(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=8,
    )


def tiny_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    from reference.tokenizer import BOS_ID, EOS_ID, TINY_VOCAB_SIZE

    config = CLIPTextConfig(
        vocab_size=TINY_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
        pad_token_id=EOS_ID,
    )
    return CLIPTextModel(config)


def tiny_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, clip_sample=False, steps_offset=1)


def build_components(config: ModelConfig | str, sd_path: str | Path | None = None, seed: int = 0,
                     variant: str | None = None) -> dict:
    """Fresh pipeline components for ``config`` (random init for tiny; SD 1.5 weights for sd15).

    ``variant`` (a trained ablation, reference/ablations.py) builds the FCSD without the input it
    lacks: ``wo_normal`` has a 3-channel ControlNet condition (the TSD alone), ``wo_emotion`` an f_d
    without the emotion token. With the same seed, a variant's UNets start from the full model's
    initial weights (they are built before the part that differs)."""
    import torch
    from diffusers import UNet2DConditionModel

    config = get_config(config) if isinstance(config, str) else config
    torch.manual_seed(seed)
    if config.name == "tiny":
        from reference.tokenizer import tiny_clip_tokenizer

        vae, text_encoder = tiny_vae(), tiny_text_encoder()
        tokenizer, scheduler = tiny_clip_tokenizer(config.text_length), tiny_scheduler()
        base_unet = UNet2DConditionModel(**tiny_unet_kwargs())
        encoder_state = None
    else:
        from reference.weights import load_resnet18_imagenet

        vae, text_encoder, tokenizer, scheduler, base_unet = load_sd15_parts(sd_path)
        encoder_state = load_resnet18_imagenet()
    return assemble_components(config, base_unet, vae, text_encoder, tokenizer, scheduler, encoder_state, variant)


def assemble_components(config: ModelConfig, base_unet, vae, text_encoder, tokenizer, scheduler,
                        encoder_state: dict | None = None, variant: str | None = None) -> dict:
    """The pipeline's components around a base UNet: both diffusion UNets with the decoupled branch,
    the ControlNet initialised from the base (6 condition channels, normal + TSD; 3 for the
    ``wo_normal`` variant), and the two condition encoders (E from ``encoder_state``, ImageNet
    ResNet-18 weights, when given; the FCSD's without the emotion token for ``wo_emotion``).

    When the SD UNet stays frozen (sd15) the TSDM and FCSD differ only in their condition branches,
    so the TSDM shares the FCSD's base weights (one copy in memory and on disk); when the whole UNet
    trains (tiny) they are two UNets.
    """
    from diffusers import ControlNetModel

    from reference.ablations import fcsd_inputs
    from reference.models import ConditionEncoder, DecoupledUNet2DConditionModel

    inputs = fcsd_inputs(variant)
    if config.train_unet_base:  # TSDM first: the random draws of the shipped tiny checkpoint's recipe
        tsdm_unet = DecoupledUNet2DConditionModel.from_unet(base_unet, config.condition_dim)
        unet = DecoupledUNet2DConditionModel.from_unet(base_unet, config.condition_dim)
    else:
        unet = DecoupledUNet2DConditionModel.from_unet(base_unet, config.condition_dim)
        tsdm_unet = DecoupledUNet2DConditionModel.sharing_base(unet, config.condition_dim)
    controlnet = ControlNetModel.from_unet(
        base_unet, conditioning_channels=6 if inputs.normal else 3,
        conditioning_embedding_out_channels=config.controlnet_embedding_channels,
    )
    emotion_dim = text_encoder.config.hidden_size if inputs.emotion else 0
    tsdm_encoder = ConditionEncoder(config.condition_dim, config.encoder, emotion_dim=0)
    fcsd_encoder = ConditionEncoder(config.condition_dim, config.encoder, emotion_dim=emotion_dim)
    if encoder_state is not None:
        tsdm_encoder.image_encoder.load_imagenet_backbone(encoder_state)
        fcsd_encoder.image_encoder.load_imagenet_backbone(encoder_state)
    return dict(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, tsdm_unet=tsdm_unet,
        tsdm_encoder=tsdm_encoder, unet=unet, controlnet=controlnet, fcsd_encoder=fcsd_encoder,
        scheduler=scheduler,
    )


SD15_PARTS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")


def load_sd15_parts(sd_path: str | Path | None):
    """VAE, CLIP text encoder, tokenizer, DDPM scheduler and UNet from a local SD 1.5 folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if sd_path is None:
        raise CabenchError("the sd15 config needs --sd-path: a local Stable Diffusion 1.5 folder "
                           "(with vae/, unet/, text_encoder/, tokenizer/, scheduler/)")
    root = Path(sd_path)
    if not root.is_dir():
        raise WeightsMissingError(f"Stable Diffusion 1.5 folder {root} does not exist; put a copy of "
                                  "stable-diffusion-v1-5 (diffusers layout) there")
    for part in SD15_PARTS:
        if not (root / part).is_dir():
            raise WeightsMissingError(f"Stable Diffusion 1.5 folder {root} has no {part}/ subfolder "
                                      "(diffusers layout expected)")
    try:
        vae = AutoencoderKL.from_pretrained(root / "vae")
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        scheduler = DDPMScheduler.from_pretrained(root / "scheduler")
        unet = UNet2DConditionModel.from_pretrained(root / "unet")
    except (OSError, ValueError) as error:
        raise WeightsMissingError(f"cannot load Stable Diffusion 1.5 from {root}: {error}") from error
    return vae, text_encoder, tokenizer, scheduler, unet
