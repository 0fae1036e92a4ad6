"""The paper's ablations (section 5.3, Tables 1 and 2) as trained variants of the FCSD.

Each row of the paper is a model trained without one input, not the full model given zeros:

* ``wo_stage2`` ("w/o stage2 (Baseline)": "Stage 1 combined with Stage 3 ... TSD is not learned
  through Stage 2, but is directly used as a condition for ControlNet"): an FCSD trained and
  sampled on the *unaligned* TSD of the stage-1 RGB (ControlNet condition and E's input); no TSDM
  runs at inference.
* ``wo_aligned_tsd`` (Table 2's "w/o aligned TSD"): section 5.3 compares "unaligned coarse TSD
  versus aligned TSD" and explains the gap by "the baseline directly adopts unaligned TSD
  conditions"; the paper describes no other model with or without the aligned TSD. So it is the
  same trained model as ``wo_stage2`` under the name Table 2 gives it (an alias, trained and
  stored once), not an FCSD without any TSD.
* ``wo_normal``: an FCSD whose ControlNet takes the TSD alone (3 condition channels), trained so.
* ``wo_emotion``: an FCSD whose f_d has no emotion token (3 tokens: E(TSD'), pose, expression).
* ``wo_lcm`` is not trained: the full model's undistilled weights at their usual sampler.

A pipeline folder keeps its full model at the top and each trained variant's FCSD parts (``unet``,
``controlnet``, ``fcsd_encoder``, its LCM-LoRA) in ``ablations/<name>/`` beside ``variant.json``;
the VAE, text encoder and TSDM are shared. A pipeline saved on its own records the variant it is
in ``model_index.json`` (``trained_ablation``).

``ablation_mode="zero-input"`` is the inference-time switch on the full model's weights, kept for
diagnosis: the removed input is zeroed (normal, emotion) or, for ``wo_stage2`` / ``wo_aligned_tsd``,
the unaligned TSD replaces TSDM's. Its rows are labelled as such; it is not the paper's ablation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from metrics.errors import CabenchError

ABLATIONS = ("wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd")
TRAINED_ABLATIONS = ("wo_stage2", "wo_normal", "wo_emotion")
ALIASES = {"wo_aligned_tsd": "wo_stage2"}
ABLATION_MODES = ("trained", "zero-input")
UNALIGNED_TSD = ("wo_stage2", "wo_aligned_tsd")
VARIANTS_DIR = "ablations"
VARIANT_FILE = "variant.json"
FCSD_PARTS = ("unet", "controlnet", "fcsd_encoder")


@dataclass(frozen=True)
class FcsdInputs:
    """The inputs an FCSD variant is built and trained with."""

    normal: bool = True
    emotion: bool = True
    aligned_tsd: bool = True


def check_ablation(ablation: str | None, mode: str = "trained") -> None:
    if ablation is not None and ablation not in ABLATIONS:
        raise CabenchError(f"unknown ablation {ablation!r}; choose one of: {', '.join(ABLATIONS)}")
    if mode not in ABLATION_MODES:
        raise CabenchError(f"unknown ablation_mode {mode!r}; choose one of: {', '.join(ABLATION_MODES)}")


def trained_variant(ablation: str | None) -> str | None:
    """The trained FCSD variant an ablation row uses (None: the full model, also for ``wo_lcm``)."""
    check_ablation(ablation)
    ablation = ALIASES.get(ablation, ablation)
    return ablation if ablation in TRAINED_ABLATIONS else None


def fcsd_inputs(variant: str | None) -> FcsdInputs:
    return FcsdInputs(normal=variant != "wo_normal", emotion=variant != "wo_emotion",
                      aligned_tsd=variant != "wo_stage2")


def variant_folder(root: str | Path, variant: str) -> Path:
    return Path(root) / VARIANTS_DIR / variant


def trained_variants(root: str | Path) -> list[str]:
    """The variants trained into the pipeline folder ``root`` (those with a ``variant.json``)."""
    return [v for v in TRAINED_ABLATIONS if (variant_folder(root, v) / VARIANT_FILE).is_file()]


def write_variant_record(folder: Path, variant: str, **facts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / VARIANT_FILE).write_text(json.dumps({"trained_ablation": variant, **facts}, indent=2) + "\n")


def read_variant_record(root: str | Path, variant: str) -> dict:
    path = variant_folder(root, variant) / VARIANT_FILE
    if not path.is_file():
        have = trained_variants(root)
        raise CabenchError(
            f"checkpoint {root} has no trained {variant!r} variant (no {path}; trained: "
            f"{', '.join(have) or 'none'}); train it with `cabench train stage3 --ablation {variant} --output "
            f"{root}`, or ask for the inference-time switch with ablation_mode='zero-input' (a diagnosis, "
            "not the paper's ablation)")
    record = json.loads(path.read_text())
    if record.get("trained_ablation") != variant:
        raise CabenchError(f"{path} records ablation {record.get('trained_ablation')!r}, expected {variant!r}")
    return record


def saved_ablation(root: str | Path) -> str | None:
    """The ablation a pipeline folder was saved as (``trained_ablation`` in its model_index.json)."""
    index = Path(root) / "model_index.json"
    return json.loads(index.read_text()).get("trained_ablation") if index.is_file() else None


def check_pipeline_matches(trained_ablation: str | None, ablation: str | None, mode: str) -> None:
    """Raise unless a pipeline trained as ``trained_ablation`` may render row ``ablation`` in ``mode``."""
    check_ablation(ablation, mode)
    wanted = trained_variant(ablation)
    if mode == "zero-input":
        if trained_ablation is not None:
            raise CabenchError(f"ablation_mode='zero-input' switches inputs of the full model; this pipeline is "
                               f"the trained {trained_ablation!r} variant")
        return
    if wanted == trained_ablation:
        return
    if trained_ablation is None:
        raise CabenchError(
            f"ablation {ablation!r} is a trained variant and this pipeline is the full model: load it with "
            f"ConsistentAvatarPipeline.from_pretrained(folder, ablation={ablation!r}) (train it with `cabench "
            f"train stage3 --ablation {wanted}`), or ask for the inference-time switch with "
            "ablation_mode='zero-input' (a diagnosis, not the paper's ablation)")
    raise CabenchError(f"this pipeline is the trained {trained_ablation!r} variant; render it with "
                       f"ablation={trained_ablation!r}, not {ablation!r}")


def variant_components(root: str | Path, variant: str, torch_dtype=None) -> dict:
    """The FCSD parts of the trained ``variant`` in the pipeline folder ``root``, loaded."""
    from diffusers import ControlNetModel

    from reference.models import ConditionEncoder, DecoupledUNet2DConditionModel

    read_variant_record(root, variant)
    folder = variant_folder(root, variant)
    classes = {"unet": DecoupledUNet2DConditionModel, "controlnet": ControlNetModel, "fcsd_encoder": ConditionEncoder}
    dtype = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
    return {part: classes[part].from_pretrained(folder / part, **dtype) for part in FCSD_PARTS}
