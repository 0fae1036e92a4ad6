"""Rendering across processes: `cabench infer` and the ConsistentAvatar adapter under `torchrun` with two CPU
processes give the frames of one process (frame i's noise comes from seed + i, and each batch is the same
computation wherever it runs), up to one grey level of float rounding (see ``assert_same_frames``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_helpers import make_sequence

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    # under torchrun: `cabench infer` (argv[1:-2]), then the adapter on the synthetic sequence argv[-2]
    import sys

    import numpy as np
    from accelerate import PartialState

    import baselines
    from benchmark.cli import main
    from benchmark.datasets import open_dataset

    assert main(sys.argv[1:-2]) == 0
    sequence = open_dataset(sys.argv[-2]).sequences[0]
    adapter = baselines.create_adapter("consistentavatar", checkpoint="tiny", steps=2, batch_size=1, device="auto",
                                       across_processes=True)
    adapter.load()
    output = adapter.outputs(sequence)
    frames = output.frames.read(output.frames.frame_ids).rgb
    state = PartialState()
    if state.is_main_process:
        np.save(sys.argv[-1], frames)
        print("adapter on", state.num_processes, "processes")
""")

def assert_same_frames(one: np.ndarray, two: np.ndarray, label: str) -> None:
    """The frames of one process and of two: equal up to one grey level in at most 0.1% of the values.
    Each batch is the same computation, yet a torchrun process's kernels can round differently in the
    last float bit, and the two sampling steps carry that across a grey level now and then (measured
    with the shipped checkpoint: 1 value of 12,288 in one of 5 frames, at batch size 1 in 3 of 5)."""
    difference = np.abs(one.astype(int) - two.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() <= 1e-3, (label, difference.max(), (difference > 0).sum())


@pytest.fixture()
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process runs (OMP_NUM_THREADS=1), so kernels round alike
    yield
    torch.set_num_threads(previous)


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_processes_render_the_frames_of_one(tmp_path, one_thread):
    from benchmark.datasets import open_dataset
    from benchmark.datasets.synthetic import write_sequence

    sequence_folder = make_sequence(tmp_path / "seq", frames=3)  # batches of 2 and 1: one per process
    infer = ["infer", "--data", str(sequence_folder), "--split", "all", "--steps", "2", "--batch-size", "2", "--quiet"]
    write_sequence(tmp_path / "synth" / "talk", frames=4, size=64, seed=3)
    script = tmp_path / "render_two.py"
    script.write_text(SCRIPT)

    result = _torchrun(str(script), *infer, "--output", str(tmp_path / "two"), str(tmp_path / "synth" / "talk"),
                       str(tmp_path / "two.npy"))
    assert "wrote 3 frames" in result.stdout and "(2 processes)" in result.stdout
    assert "adapter on 2 processes" in result.stdout

    assert main([*infer, "--output", str(tmp_path / "one")]) == 0
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 3
    from PIL import Image

    for name in names:
        assert_same_frames(np.asarray(Image.open(tmp_path / "one" / name)), np.asarray(Image.open(tmp_path / "two" / name)),
                           name)

    import baselines

    sequence = open_dataset(tmp_path / "synth" / "talk").sequences[0]
    adapter = baselines.create_adapter("consistentavatar", checkpoint="tiny", steps=2, batch_size=1, device="cpu")
    output = adapter.outputs(sequence)
    assert_same_frames(output.frames.read(output.frames.frame_ids).rgb, np.load(tmp_path / "two.npy"), "adapter")
