"""Speed of `cabench synth`: 120 frames at 256x256 (the issue's target: under 20 s on 2 CPU cores).

Run: ``pytest tests/bench/bench_synth.py --benchmark-only``.
"""

from __future__ import annotations

import shutil

from benchmark.datasets.synthetic import write_sequence


def test_synth_120_frames_256(benchmark, tmp_path):
    out = tmp_path / "synth"

    def make():
        shutil.rmtree(out, ignore_errors=True)
        return write_sequence(out, frames=120, size=256, seed=0, progress=False)

    root = benchmark.pedantic(make, rounds=3, iterations=1, warmup_rounds=0)
    assert len(list((root / "images").glob("*.png"))) == 120
