"""LSE-D / LSE-C / AV offset: the command line reads the audio from the ground-truth video; the offset search
finds a known shift. (Equality with syncnet_python itself: tests/test_calibration_lipsync.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from metrics.syncnet import VSHIFT, sync_distances, sync_scores
from tests.audio_helpers import write_talking_video
from tests.lipsync_recipe import CASES, frames_rgb, make_case, syncnet_weights


def _run(args, capsys) -> tuple[int, str, str]:
    """``cabench ARGS`` (the command line's own entry, in this process): exit status, stdout, stderr."""
    capsys.readouterr()
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


def test_cabench_eval_reads_the_audio_of_the_ground_truth_video(tmp_path, monkeypatch, capsys):
    sequence, audio = make_case(CASES["talk-sync"], tmp_path / "data")
    frames = frames_rgb(sequence)
    talk = write_talking_video(tmp_path / "talk.mkv", frames, 25, audio.aligned(len(frames)).samples)
    ours = write_talking_video(tmp_path / "ours.mkv", np.roll(frames, 2, axis=0), 25, None)  # 2 frames late, no audio
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("CABENCH_WEIGHTS", str(weights))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["eval", "--gt", str(talk), "--pred", f"ours={ours}", "--metrics", "lse_c,lse_d", "--no-plots", "--quiet"]
    status, out, err = _run([*args, "--out", str(tmp_path / "no-weights")], capsys)
    assert status == 0, err
    assert "lse_d: missing (syncnet_v2.model" in out and "cabench weights --download syncnet-v2" in out
    syncnet_weights(weights / "syncnet_v2.model")
    status, out, err = _run([*args, "--out", str(tmp_path / "run")], capsys)
    assert status == 0, err
    rows = pd.read_csv(tmp_path / "run" / "per_frame.csv")
    windows = len(frames) - 5
    for column in ("lse_d", "lse_c"):
        values = rows.loc[rows["metric"] == column].sort_values("frame")["value"].to_numpy() if "metric" in rows else \
            rows.sort_values("frame")[column].to_numpy()
        assert np.isfinite(values[:windows]).all() and np.isnan(values[windows:]).all()
    silent = write_talking_video(tmp_path / "silent.mkv", frames, 25, None)
    status, out, _ = _run(["eval", "--gt", str(silent), "--pred", f"ours={ours}", "--metrics", "lse_d", "--no-plots",
                           "--quiet", "--out", str(tmp_path / "silent-run")], capsys)
    assert status == 0 and "lse_d: missing (the ground truth has no audio" in out


def test_bad_audio_beside_frames_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import cv2

    gt = tmp_path / "gt"
    gt.mkdir()
    for i in range(8):
        cv2.imwrite(str(gt / f"{i:05d}.png"), np.full((32, 32, 3), 128, np.uint8))
    (tmp_path / "gt.wav").write_bytes(b"RIFF....WAVEnot really")
    weights = tmp_path / "weights"
    weights.mkdir()
    syncnet_weights(weights / "syncnet_v2.model")
    monkeypatch.setenv("CABENCH_WEIGHTS", str(weights))
    status, _, err = _run(["eval", "--gt", str(gt), "--pred", f"m={gt}", "--metrics", "lse_d", "--no-plots", "--quiet",
                           "--out", str(tmp_path / "run")], capsys)
    assert status == 2
    assert err.strip().count("\n") == 0 and "gt.wav" in err, err


@pytest.mark.parametrize("shift", [0, 3, -4])
def test_offset_search_finds_a_known_shift(shift):
    """SyncNet's scoring (calc_pdist + the offset search) on features that carry the synchronised signal:
    each window's video feature is its 5 frames of mouth opening, each audio feature the loudness of the
    same 5 frames of the track. Random SyncNet weights carry no sync signal: the property with a network
    that has learnt the synthetic face's sync is tests/test_lipsync_trained.py (its equality with
    syncnet_python is tests/test_calibration_lipsync.py)."""
    rng = np.random.default_rng(0)
    frames = 80
    mouth = np.convolve(rng.random(frames + 40), np.ones(3) / 3, mode="same")[20:20 + frames]
    loud = np.roll(mouth, shift)  # the audio late by ``shift`` frames (positive)
    windows = frames - 5

    def features(signal):
        return torch.tensor(np.stack([signal[t:t + 5] - signal[t:t + 5].mean() for t in range(windows)]), dtype=torch.float32)

    synced = sync_scores(sync_distances(features(mouth), features(mouth)))
    shifted = sync_scores(sync_distances(features(mouth), features(loud)))
    assert synced.offset == 0 and abs(synced.min_dist) < 1e-3
    assert shifted.offset == -shift  # syncnet_python's sign: vshift - argmin
    assert shifted.min_dist >= synced.min_dist
    if shift:  # read at zero offset, the shifted audio is far worse than the synchronised one
        assert shifted.mean_dists[VSHIFT] > 10 * synced.mean_dists[VSHIFT] + 0.05
    assert synced.confidence > 0 and shifted.confidence > 0
