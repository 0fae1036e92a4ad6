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
    """The same command on 8 frames of 64 px (synth), at 32 px and 1 step (2 for the FCSD, whose
    ControlNet lets its condition through from the second step on)."""
    argv = list(argv[1:])
    options = {"--frames": "8", "--size": "64"} if argv[0] == "synth" else {"--steps": "2" if "stage3" in argv else "1"}
    for flag, value in options.items():
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
    for variant in (None, "wo_stage2", "wo_normal", "wo_emotion"):  # each FCSD trained, then distilled
        assert trainings.index(("stage3", variant, "fcsd")) < trainings.index(("distill-lcm", variant, "fcsd"))
    assert len(trainings) == 11
    # the demo's sequences: its make_data writes talk<i> with seed i, 64 frames of 128 px
    from benchmark.demo import DEMO_FRAMES, DEMO_SEQUENCES, DEMO_SIZE

    synth = [(option(a, "--name"), option(a, "--seed"), option(a, "--frames"), option(a, "--size"))
             for a in commands if a[1] == "synth"]
    assert synth == [(f"talk{i}", str(i), str(DEMO_FRAMES), str(DEMO_SIZE)) for i in range(DEMO_SEQUENCES)]


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
    data = load_sequence(tmp_path / "a" / "data" / "demo" / "talk0", "test")
    for ablation in (None, "wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd"):
        frames = render_sequence(first, data.rgb[:1], data.normal[:1], data.pose[:1], data.expression[:1],
                                 ablation=ablation, steps=2)
        assert frames.shape == (1, 64, 64, 3) and frames.dtype == np.uint8
