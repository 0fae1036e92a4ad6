"""Trained ablations: each variant is trained without its input, never reads it, differs from the
inference-time switch on the full model, and a pipeline folder records what it was trained as."""

from __future__ import annotations

import json

import pytest
import torch
from reference_helpers import make_sequence, random_inputs

from metrics.errors import CabenchError
from reference.data import load_sequence
from reference.pipeline import ConsistentAvatarPipeline
from reference.training import TrainOptions, train

SIZE = 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A pipeline folder at 16 px (2 training frames): VAE, TSDM and FCSD, and the three trained variants.
    Two steps for each FCSD: the ControlNet's zero-initialised layers let the condition through from the
    second on."""
    root = tmp_path_factory.mktemp("ablations")
    data = load_sequence(make_sequence(root / "seq", frames=4, size=SIZE), "train")
    out = root / "pipe"
    for stage, ablation in (("vae", None), ("stage2", None), ("stage3", None), ("stage3", "wo_normal"),
                            ("stage3", "wo_emotion"), ("stage3", "wo_aligned_tsd")):
        train(TrainOptions(stage=stage, ablation=ablation, steps=1 if stage != "stage3" else 2, batch_size=2,
                           snr_gamma=5.0 if ablation == "wo_normal" else None, progress=False, device="cpu"), data, out)
    return out


def render(pipe, inputs, ablation=None, mode="trained", emotion=None):
    return pipe(*inputs, emotion=emotion, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                ablation=ablation, ablation_mode=mode).images


@pytest.fixture(scope="module")
def full(folder):
    return ConsistentAvatarPipeline.from_pretrained(folder)


def test_the_folder_records_its_variants(folder, full):
    from reference.ablations import trained_variants

    assert trained_variants(folder) == ["wo_stage2", "wo_normal", "wo_emotion"]  # wo_aligned_tsd is wo_stage2
    record = json.loads((folder / "ablations" / "wo_stage2" / "variant.json").read_text())
    assert record["trained_ablation"] == "wo_stage2" and record["stage3_tsd"] == "unaligned"
    assert record["aliases"] == ["wo_aligned_tsd"] and record["snr_gamma"] is None  # plain eps-MSE
    wo_normal = json.loads((folder / "ablations" / "wo_normal" / "variant.json").read_text())
    assert wo_normal["stage3_tsd"] == "tsdm" and wo_normal["snr_gamma"] == 5.0  # the loss weighting it trained with
    assert full.trained_ablation is None
    assert not any((folder / "ablations" / v / "tsdm_unet").exists() for v in ("wo_stage2", "wo_normal"))


def test_wo_normal_has_no_path_from_the_normal(folder, full):
    variant = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_normal")
    assert variant.trained_ablation == "wo_normal"
    assert variant.controlnet.config.conditioning_channels == 3 and full.controlnet.config.conditioning_channels == 6
    inputs = random_inputs(1, SIZE)
    rgb, normal, pose, expression = inputs
    out = render(variant, inputs, "wo_normal")
    assert torch.equal(out, render(variant, (rgb, torch.rand_like(normal), pose, expression), "wo_normal"))
    assert not torch.equal(out, render(full, inputs, "wo_normal", "zero-input"))
    # the zero-input switch of the full model does read the (zeroed) channels: the normal matters there
    assert not torch.equal(render(full, inputs), render(full, inputs, "wo_normal", "zero-input"))


def test_wo_emotion_has_no_emotion_token(folder, full):
    variant = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_emotion")
    assert variant.fcsd_encoder.emotion_proj is None and variant.fcsd_encoder.num_tokens == 3
    inputs = random_inputs(1, SIZE)
    out = render(variant, inputs, "wo_emotion", emotion=["happy"])
    assert torch.equal(out, render(variant, inputs, "wo_emotion", emotion=["angry"]))
    assert not torch.equal(out, render(full, inputs, "wo_emotion", "zero-input", emotion=["happy"]))


def test_wo_stage2_runs_no_tsdm_and_is_the_aligned_tsd_ablation(folder, full):
    variant = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_stage2")
    alias = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_aligned_tsd")
    assert variant.trained_ablation == alias.trained_ablation == "wo_stage2"
    inputs = random_inputs(1, SIZE)
    out = render(variant, inputs, "wo_stage2")
    assert torch.equal(out, render(alias, inputs, "wo_aligned_tsd"))
    with torch.no_grad():  # TSDM's weights do not matter: it never runs
        for p in variant.tsdm_unet.parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(out, render(variant, inputs, "wo_stage2"))
    proxy, guide, *_ = variant.prepare_conditions(*inputs, ablation="wo_stage2")
    assert torch.equal(guide, proxy)
    assert not torch.equal(out, render(full, inputs, "wo_stage2", "zero-input"))


def test_an_ablation_the_checkpoint_was_not_trained_for_is_an_error(folder, full, tmp_path):
    inputs = random_inputs(1, SIZE)
    with pytest.raises(CabenchError, match="trained variant and this pipeline is the full model"):
        render(full, inputs, "wo_normal")
    variant = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_normal")
    with pytest.raises(CabenchError, match="trained 'wo_normal' variant; render it with ablation='wo_normal'"):
        render(variant, inputs)
    with pytest.raises(CabenchError, match="zero-input"):
        render(variant, inputs, "wo_normal", "zero-input")
    with pytest.raises(CabenchError, match="unknown ablation_mode"):
        render(full, inputs, "wo_normal", "zeros")
    render(full, inputs, "wo_lcm")  # an inference setting of the full model
    # a folder without the variant names the command that trains it
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("ablations"))
    with pytest.raises(CabenchError, match="cabench train stage3 --ablation wo_emotion"):
        ConsistentAvatarPipeline.from_pretrained(bare, ablation="wo_emotion")


def test_a_variant_saved_on_its_own_records_its_ablation(folder, tmp_path):
    variant = ConsistentAvatarPipeline.from_pretrained(folder, ablation="wo_emotion")
    variant.save_pretrained(tmp_path / "alone")
    assert json.loads((tmp_path / "alone" / "model_index.json").read_text())["trained_ablation"] == "wo_emotion"
    again = ConsistentAvatarPipeline.from_pretrained(tmp_path / "alone")
    assert again.trained_ablation == "wo_emotion"
    inputs = random_inputs(1, SIZE)
    assert torch.equal(render(again, inputs, "wo_emotion"), render(variant, inputs, "wo_emotion"))
    assert ConsistentAvatarPipeline.from_pretrained(tmp_path / "alone", ablation="wo_emotion").trained_ablation == "wo_emotion"


def test_training_options_that_contradict_each_other(tmp_path):
    from reference.training import stage_target

    def target(**kwargs):
        return stage_target(TrainOptions(**kwargs), tmp_path)

    assert target(stage="stage3").guide == "tsdm" and target(stage="stage3", stage3_tsd="ground-truth").guide == "ground-truth"
    assert target(stage="stage3", ablation="wo_aligned_tsd").folder == tmp_path / "ablations" / "wo_stage2"
    with pytest.raises(CabenchError, match="wo_lcm is the full model's undistilled weights"):
        target(stage="stage3", ablation="wo_lcm")
    with pytest.raises(CabenchError, match="applies to stage3"):
        target(stage="stage2", ablation="wo_normal")
    with pytest.raises(CabenchError, match="drop --stage3-tsd"):
        target(stage="stage3", ablation="wo_stage2", stage3_tsd="tsdm")
    with pytest.raises(CabenchError, match="holds no pipeline"):
        train(TrainOptions(stage="stage3", ablation="wo_normal", steps=1, progress=False),
              load_sequence(make_sequence(tmp_path / "seq", frames=3, size=SIZE), "train"), tmp_path / "none")
