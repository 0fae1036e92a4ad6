"""The recipe for the shipped tiny checkpoint (docs/reference.md), rerun at reduced size and steps: it runs end to
end (every row of the demo renders from what it makes) and makes the same weight files twice."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main

RECIPE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
HEADING = "## The shipped tiny checkpoint"


def recipe() -> list[list[str]]:
    """The `cabench ...` command lines of the first code block under the recipe's heading."""
    text = RECIPE_PAGE.read_text()
    block = text[text.index(HEADING):].split("```")[1]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip().startswith("cabench ")]


def reduced(argv: list[str]) -> list[str]:
    """The same command on 4 frames of 64 px (synth), at 32 px and 1 step (2 for the FCSD, whose
    ControlNet lets its condition through from the second step on)."""
    argv = list(argv[1:])
    options = {"--frames": "4", "--size": "64"} if argv[0] == "synth" else {"--steps": "2" if "stage3" in argv else "1"}
    for flag, value in options.items():
        if flag in argv:  # (the emotion reference set has no frames)
            argv[argv.index(flag) + 1] = value
    if argv[0] == "train":
        argv += ["--size", "32"]
    return [*argv, "--quiet"]


def run_recipe(folder: Path, monkeypatch) -> Path:
    """Each command runs as the README runs it, in a new process: torch's global generator starts
    from a random seed (``torch.seed()`` here), so nothing may depend on it."""
    import torch

    monkeypatch.chdir(folder)
    for argv in recipe():
        torch.seed()
        assert main(reduced(argv)) == 0, argv
    [checkpoint] = {Path(argv[argv.index("--output") + 1]) for argv in recipe() if "--output" in argv}
    return folder / checkpoint


def test_the_recipe_is_what_the_readme_says():
    def option(argv, flag, default=None):
        return argv[argv.index(flag) + 1] if flag in argv else default

    commands = recipe()
    trainings = [(argv[2], option(argv, "--ablation"), option(argv, "--component", "fcsd"))
                 for argv in commands if argv[1] == "train"]
    assert trainings[:3] == [("vae", None, "fcsd"), ("stage2", None, "fcsd"), ("distill-lcm", None, "tsdm")]
    for variant in (None, "wo_stage2", "wo_normal", "wo_emotion"):  # each FCSD trained
        assert ("stage3", variant, "fcsd") in trainings
    assert trainings.index(("stage3", None, "fcsd")) < trainings.index(("distill-lcm", None, "fcsd"))
    # stage 3 trains on the demo's sequences: its make_data writes talk<i> with seed i, 64 frames of 128 px,
    # the demo's motion; every stage-3 training and distillation labels emotions from the reference set
    from benchmark.demo import DEMO_FRAMES, DEMO_MOTION, DEMO_SEQUENCES, DEMO_SIZE

    synth = {option(a, "--out"): [] for a in commands if a[1] == "synth"}
    for a in commands:
        if a[1] == "synth" and "--emotion-reference" not in a:
            synth[option(a, "--out")].append((option(a, "--name"), option(a, "--seed"), option(a, "--frames"),
                                              option(a, "--size"), option(a, "--motion", "v1")))
    demo_data = {option(a, "--data") for a in commands if a[1] == "train" and a[2] == "stage3"}
    assert len(demo_data) == 1
    assert synth[demo_data.pop()] == [(f"talk{i}", str(i), str(DEMO_FRAMES), str(DEMO_SIZE), DEMO_MOTION)
                                      for i in range(DEMO_SEQUENCES)]
    [reference_set] = [a for a in commands if "--emotion-reference" in a]
    emotion_db = f"{option(reference_set, '--out')}/{option(reference_set, '--name')}"
    assert all(option(a, "--emotion-db") == emotion_db for a in commands
               if a[1] == "train" and (a[2] == "stage3" or option(a, "--component", "fcsd") == "fcsd" and a[2] == "distill-lcm"))


@pytest.mark.slow
def test_the_recipe_runs_end_to_end_and_remakes_the_same_files(tmp_path, monkeypatch):
    from reference.ablations import trained_variants
    from reference.data import load_sequence
    from reference.render import render_sequence

    first = run_recipe((tmp_path / "a").resolve().mkdir() or tmp_path / "a", monkeypatch)
    second = run_recipe((tmp_path / "b").resolve().mkdir() or tmp_path / "b", monkeypatch)
    files = sorted(p.relative_to(first) for p in first.rglob("*.safetensors"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.safetensors"))
    assert Path("unet_lcm_lora/pytorch_lora_weights.safetensors") in files
    differing = [str(f) for f in files if (first / f).read_bytes() != (second / f).read_bytes()]
    assert not differing

    assert trained_variants(first) == ["wo_stage2", "wo_normal", "wo_emotion"]
    assert (first / "emotion_db").is_dir()  # the labels the FCSD trained with travel with it
    data = load_sequence(tmp_path / "a" / "data" / "demo" / "talk0", "test")
    for ablation in (None, "wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd"):
        frames = render_sequence(first, data.rgb[:1], data.normal[:1], data.pose[:1], data.expression[:1],
                                 ablation=ablation, steps=2)
        assert frames.shape == (1, 64, 64, 3) and frames.dtype == np.uint8
