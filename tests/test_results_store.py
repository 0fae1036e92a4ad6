"""The part store: exact round trip, torn writes cut off, resume, and a cost linear in frames (bytes
counted by the kernel: /proc/self/io's wchar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import runner
from benchmark.results.store import Part
from reports.publish import publish
from tests.run_helpers import config, write_videos


def _rows(frames: range, seed: int = 0) -> pd.DataFrame:
    values = np.random.default_rng(seed).random(len(frames)) * 1e-3
    values[0] = np.inf if frames.start == 0 else values[0]  # PSNR of identical frames is inf
    return pd.DataFrame({"frame": list(frames), "psnr": values, "tof": np.where(np.arange(len(frames)) == 1, np.nan, values)})


def test_values_read_back_bit_for_bit_and_the_part_compacts(tmp_path):
    part = Part(tmp_path, "psnr", "fp1")
    part.begin(keep=False)
    batches = [_rows(range(0, 4)), _rows(range(4, 8), seed=1)]
    for batch in batches:
        part.append(batch)
    expected = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(part.rows(), expected, check_exact=True)
    part.finish()
    again = Part(tmp_path, "psnr", "fp1")
    assert again.complete and not (tmp_path / "psnr.log").exists()
    pd.testing.assert_frame_equal(again.rows(), expected, check_exact=True)
    assert not Part(tmp_path, "psnr", "fp2").complete  # stored under another fingerprint: absent


def test_a_torn_or_corrupt_record_is_cut_off_and_the_part_resumes_after_the_last_good_one(tmp_path):
    part = Part(tmp_path, "psnr", "fp")
    part.begin(keep=False)
    part.append(_rows(range(0, 4)))
    good = (tmp_path / "psnr.log").read_bytes()
    part.append(_rows(range(4, 8)))
    whole = (tmp_path / "psnr.log").read_bytes()
    for cut in range(len(good) + 1, len(whole)):  # killed anywhere in the second write
        (tmp_path / "psnr.log").write_bytes(whole[:cut])
        assert list(Part(tmp_path, "psnr", "fp").rows()["frame"]) == [0, 1, 2, 3]
    flipped = bytearray(whole)
    flipped[len(good) + 20] ^= 0x01  # a changed byte fails the record's checksum
    (tmp_path / "psnr.log").write_bytes(bytes(flipped))
    resumed = Part(tmp_path, "psnr", "fp")
    resumed.begin(keep=True)
    assert (tmp_path / "psnr.log").read_bytes() == good
    resumed.append(_rows(range(4, 8)))
    assert (tmp_path / "psnr.log").read_bytes() == whole


def _written_during(action) -> int:
    """Bytes this process handed to write(2) while ``action`` ran (the kernel's count)."""
    def wchar() -> int:
        return int(next(line for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("wchar")).split()[1])

    before = wchar()
    action()
    return wchar() - before


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_the_store_writes_bytes_linear_in_frames(tmp_path):
    def store(frames: int, folder: Path) -> int:
        def action():
            part = Part(folder, "psnr", "fp")
            part.begin(keep=False)
            for start in range(0, frames, 8):
                part.append(_rows(range(start, start + 8)))
            part.finish()
        return _written_during(action)

    sizes = {n: store(n, tmp_path / str(n)) for n in (256, 1024)}
    value_bytes = len(_rows(range(0, 1024)).to_csv(index=False))
    assert sizes[1024] < 2.5 * value_bytes  # each value written twice (the log, then the compacted CSV)
    assert sizes[1024] / sizes[256] < 4.4  # 4x the frames: 4x the bytes (rewriting per batch would be ~16x)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_a_run_writes_bytes_linear_in_frames(tmp_path, monkeypatch):
    monkeypatch.setattr("benchmark.engine.compute.write_samples", lambda *args: None)  # PNGs: a size of their own
    written = {}
    for frames in (16, 32, 64):
        videos = write_videos(tmp_path / f"videos{frames}", frames=frames, size=32)
        run = config(videos, tmp_path / f"run{frames}", batch_size=2)
        written[frames] = _written_during(lambda run=run: runner.run_config(run, progress=False, plots=False,
                                                                               report=False, log=lambda m: None, publish=publish))
    # Linear: 32 more frames cost twice what 16 more did; a store rewritten after every batch: four times.
    assert (written[64] - written[32]) / (written[32] - written[16]) < 2.4
