"""Lip sync with weights that have learnt it (tests/syncnet_tiny_recipe.py: a 1/16-width SyncNet trained on the
synthetic talking face): a prediction whose mouth is out of step with the audio scores a worse LSE-D and an
AV offset at its shift, and the ground truth's audio features are computed once per sequence however many
methods are scored, in ``cabench eval`` and in ``cabench run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_helpers import write_talking_video
from syncnet_tiny_recipe import FRAMES as TRAIN_FRAMES
from syncnet_tiny_recipe import SIZE, TRAIN_SEEDS, WEIGHTS, rendered_frames, speech

from benchmark.cli import main
from metrics import lipsync

SEED = 7          # not one of the training sequences
FRAMES = 40
SHIFT = 3


def delayed(frames: np.ndarray, shift: int) -> np.ndarray:
    """The frames ``shift`` frames late (the first frame held): the mouth after the audio, which then leads."""
    return np.concatenate([np.repeat(frames[:1], shift, axis=0), frames[:-shift]])


@pytest.fixture()
def counted(monkeypatch):
    """How many times the ground truth's audio features are computed."""
    calls = []
    original = lipsync.audio_windows
    monkeypatch.setattr(lipsync, "audio_windows", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def _per_method(out: Path, column: str) -> dict[str, float]:
    rows = pd.read_csv(out / "per_frame.csv")
    rows = rows[rows["metric"] == column] if "metric" in rows else rows
    value = "value" if "value" in rows else column
    return rows.groupby("method")[value].mean().to_dict()


def test_the_recipe_trains_on_other_sequences_than_the_test():
    assert SEED not in TRAIN_SEEDS and WEIGHTS.is_file() and WEIGHTS.stat().st_size < 1_000_000
    assert TRAIN_FRAMES >= FRAMES


def test_cabench_eval_shifted_mouth_scores_worse_with_its_offset_and_one_audio_computation(tmp_path, counted, capsys):
    frames = rendered_frames(SEED, FRAMES, SIZE)
    talk = write_talking_video(tmp_path / "talk.mkv", frames, 25, speech(SEED, FRAMES))
    preds = {"synced": frames, "late": delayed(frames, SHIFT), "later": delayed(frames, SHIFT + 2)}
    args = ["eval", "--gt", str(talk), "--metrics", "lse_d,lse_c,av_offset", "--syncnet-weights", str(WEIGHTS),
            "--lse-crop", "frame", "--no-plots", "--quiet", "--out", str(tmp_path / "run")]
    for name, video in preds.items():
        args += ["--pred", f"{name}={write_talking_video(tmp_path / f'{name}.mkv', video, 25, None)}"]
    assert main(args) == 0, capsys.readouterr().err
    assert len(counted) == 1  # three methods, one sequence: the audio features once
    lse_d, offset = _per_method(tmp_path / "run", "lse_d"), _per_method(tmp_path / "run", "av_offset")
    assert lse_d["synced"] < lse_d["late"] < lse_d["later"], lse_d
    assert abs(offset["synced"]) <= 1 and abs(offset["late"] - SHIFT) <= 1 and abs(offset["later"] - SHIFT - 2) <= 1, offset
    assert _per_method(tmp_path / "run", "lse_c")["synced"] > _per_method(tmp_path / "run", "lse_c")["late"]


def test_cabench_run_computes_the_audio_features_once_per_sequence(tmp_path, counted, capsys):
    from benchmark.datasets.synthetic import write_sequence

    # the synthetic sequence's audio.wav is the run's audio; three methods with its frames
    root = write_sequence(tmp_path / "data", frames=12, size=64, seed=SEED, progress=False, audio=True, overwrite=True)
    for name in ("a", "b", "c"):
        (tmp_path / name).symlink_to(root / "images")
    config = tmp_path / "run.toml"
    config.write_text(f'''[run]
metrics = ["lse_d", "av_offset"]
out = "{tmp_path / 'out'}"
split = "all"

[run.options.lse_d]
syncnet_weights = "{WEIGHTS}"
lse_crop = "frame"

[run.options.av_offset]
syncnet_weights = "{WEIGHTS}"
lse_crop = "frame"

[[datasets]]
path = "{tmp_path / 'data'}"
''' + "".join(f'''
[[methods]]
name = "{name}"
frames = "{tmp_path / name}"
''' for name in ("a", "b", "c")))
    assert main(["run", str(config), "--no-plots", "--quiet"]) == 0, capsys.readouterr().err
    assert len(counted) == 1
    assert main(["run", str(config), "--no-plots", "--quiet"]) == 0  # stored: nothing computed again
    assert len(counted) == 1
