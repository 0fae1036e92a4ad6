"""What a protocol needs of the input is decided before any work: ``--protocol all`` on a plain pair of
176x144 videos (no landmarks, no mask) runs every protocol that can run and lists the others as missing
with the reason and the fix; a protocol named explicitly that cannot run stops the run with one line."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from metrics.protocols import PROTOCOLS

WIDTH, HEIGHT, FRAMES = 176, 144, 4


def write_mp4(path, frames: np.ndarray) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("videos")
    photo = data.astronaut()
    gt = np.stack([cv2.resize(photo[20 + 4 * i: 340 + 4 * i, 60: 451], (WIDTH, HEIGHT)) for i in range(FRAMES)])
    pred = np.clip(gt + np.random.default_rng(0).normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    return write_mp4(root / "gt.mp4", gt), write_mp4(root / "pred.mp4", pred)


def test_all_runs_what_fits_and_lists_the_rest_as_missing(videos, tmp_path, capsys):
    gt, pred = videos
    out = tmp_path / "all"
    code = main(["eval", "--gt", gt, "--pred", f"noisy={pred}", "--metrics", "l2,psnr,ssim", "--protocol", "all",
                 "--out", str(out), "--no-plots", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    per_frame = pd.read_csv(out / "per_frame.csv")
    ran = set(per_frame["protocol"])
    # imavatar needs the face hull (landmarks or a mask); pytorch-fid, clean-fid (and its legacy modes) and
    # torch-fidelity compute set metrics (FID, KID) only, videogpt and stylegan-v FVD only
    set_only = {name for name, protocol in PROTOCOLS.items() if {"l2", "psnr", "ssim"} <= set(protocol.unsupported)}
    assert set_only == {"pytorch-fid", "clean-fid", "clean-fid-legacy-pytorch", "clean-fid-legacy-tensorflow",
                        "torch-fidelity", "videogpt", "stylegan-v"}
    assert ran == set(PROTOCOLS.keys()) - {"imavatar"} - set_only
    assert per_frame.loc[per_frame["protocol"] == "nha", "ssim"].isna().all()  # MS-SSIM needs > 160 px
    assert per_frame.loc[per_frame["protocol"] == "nha", "psnr"].notna().all()
    assert per_frame.loc[per_frame["protocol"] == "canonical", ["l2", "psnr", "ssim"]].notna().all().all()
    missing = pd.read_csv(out / "missing.csv")
    imavatar = missing[missing["protocol"] == "imavatar"]
    assert set(imavatar["metric"]) == {"l2", "psnr", "ssim"}
    assert all("--landmarks" in reason and "--mask" in reason for reason in imavatar["reason"])
    nha = missing[missing["protocol"] == "nha"]
    assert list(nha["metric"]) == ["ssim"] and "160 px" in nha["reason"].iloc[0] and "176x144" in nha["reason"].iloc[0]
    assert "--landmarks" in printed and "protocol 'nha'" in printed


@pytest.mark.parametrize(("protocol", "named"), [("imavatar", "--landmarks"), ("canonical,nha", "160 px")])
def test_a_named_protocol_that_cannot_run_is_one_line_before_any_work(videos, tmp_path, capsys, protocol, named):
    gt, pred = videos
    out = tmp_path / "named"
    code = main(["eval", "--gt", gt, "--pred", f"noisy={pred}", "--metrics", "l2,ssim", "--protocol", protocol,
                 "--out", str(out), "--no-plots", "--quiet"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert f"protocol {protocol.split(',')[-1]!r}" in error and named in error
    assert not out.exists()  # nothing computed, no folder made


def test_a_mask_is_refused_by_full_frame_protocols_before_any_work():
    for _, protocol in PROTOCOLS.items():
        problem = protocol.input_problem("l2", (HEIGHT, WIDTH), landmarks=False, mask=True)
        assert (problem is None) == protocol.accepts_mask, protocol.id
        if problem:
            assert "drop --mask" in problem and repr(protocol.id) in problem
