"""`cabench run CONFIG` on the synthetic dataset with real adapters, in one process and as two launched
processes (torchrun: the launcher ``accelerate launch`` uses on GPUs); both give the same result table."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from reports.publish import publish

CONFIG = """
[run]
out = "{out}"
metrics = ["l2", "psnr", "ssim"]
split = "all"
batch_size = 4

[[datasets]]
name = "synthetic"
path = "{data}"
kind = "synthetic"

[[methods]]
name = "stage-1 proxy"
frames = "{{root}}/stage1/rgb"

[[methods]]
name = "flicker"
adapter = "degraded"
settings = {{ degradation = "flicker", strength = 0.1 }}

[[methods]]
name = "over-smoothing"
adapter = "degraded"
settings = {{ degradation = "oversmooth" }}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    pytest.importorskip("benchmark.datasets.synthetic")
    from benchmark.datasets.synthetic import write_sequence

    root = tmp_path_factory.mktemp("synthetic")
    write_sequence(root, frames=6, size=64, seed=0, name="s0", progress=False)
    return root


def _config(tmp_path: Path, data: Path, out: str) -> Path:
    path = tmp_path / f"{out}.toml"
    path.write_text(CONFIG.format(out=tmp_path / out, data=data))
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_config_run_with_adapters_and_two_launched_processes_agree(tmp_path, data, capsys):
    assert main(["run", str(_config(tmp_path, data, "single")), "--quiet", "--no-plots"]) == 0
    assert "| synthetic | stage-1 proxy |" in capsys.readouterr().out
    single = pd.read_csv(tmp_path / "single" / "per_frame.csv")
    assert list(dict.fromkeys(single["method"])) == ["stage-1 proxy", "flicker", "over-smoothing"]
    assert len(single) == 3 * 6
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "benchmark.cli",
                             "run", str(_config(tmp_path, data, "launched")), "--no-plots"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    # Process 0 took pairs 0 and 2, process 1 pair 1; only the main process merged and printed the table.
    assert "[1/2] synthetic/s0/stage-1 proxy" in result.stdout and "[1/1] synthetic/s0/flicker" in result.stdout
    assert result.stdout.count("results in ") == 1
    launched = pd.read_csv(tmp_path / "launched" / "per_frame.csv")
    # the launched workers run at one thread (OMP_NUM_THREADS=1), this process at torch's default: the same
    # frames and metrics, with reductions possibly summed in another order, so equal up to float rounding
    pd.testing.assert_frame_equal(launched, single, check_exact=False, rtol=1e-5)


@pytest.mark.slow
def test_runs_killed_at_random_points_resume_to_byte_identical_results(tmp_path):
    """SIGKILL a run at random moments of its work (computing, compacting, merging, writing), several times
    in a row; the run that finishes writes the same bytes as one never interrupted."""
    import random
    import signal
    import time

    from benchmark import runner
    from benchmark.config import to_toml
    from tests.run_helpers import config, write_videos

    videos = write_videos(tmp_path / "videos", frames=24, size=48)
    whole = config(videos, tmp_path / "whole", metrics=("l2", "psnr", "ssim", "tof"), batch_size=2)
    started = time.monotonic()
    runner.run_config(whole, progress=False, plots=False, report=False, log=lambda m: None, publish=publish)
    work = time.monotonic() - started
    expected = (tmp_path / "whole" / "per_frame.csv").read_bytes()

    path = tmp_path / "killed.toml"
    path.write_text(to_toml(config(videos, tmp_path / "killed", metrics=("l2", "psnr", "ssim", "tof"), batch_size=2)))
    command = [sys.executable, "-m", "benchmark.cli", "run", str(path), "--quiet", "--no-plots"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    lock = tmp_path / "killed" / ".cabench" / "lock"
    chance = random.Random(20240611)
    killed = 0
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and str(process.pid) not in (
                lock.read_text() if lock.exists() else ""):
            time.sleep(0.01)  # until it holds the folder: its work has begun
        time.sleep(chance.uniform(0.0, 1.5 * work))
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed += process.returncode == -signal.SIGKILL
    assert killed >= 3, "the runs finished before they could be killed"
    # the run that finishes: the same command, in this process (nothing is killed any more; a launch costs seconds)
    assert main(command[3:]) == 0
    assert (tmp_path / "killed" / "per_frame.csv").read_bytes() == expected
    assert not list((tmp_path / "killed").rglob("*.tmp")) and not list((tmp_path / "killed").rglob("*.log"))
