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
    pd.testing.assert_frame_equal(launched, single)


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_numbers(tmp_path_factory, tmp_path):
    import signal
    import time

    from benchmark.datasets.synthetic import write_sequence

    data = tmp_path_factory.mktemp("longer")
    write_sequence(data, frames=32, size=64, seed=1, name="s1", progress=False)
    text = CONFIG.replace('metrics = ["l2", "psnr", "ssim"]', 'metrics = ["l2", "psnr", "ssim", "tof"]')
    text = text.replace("batch_size = 4", "batch_size = 2")
    configs = {}
    for name in ("whole", "killed"):
        configs[name] = tmp_path / f"{name}.toml"
        configs[name].write_text(text.format(out=tmp_path / name, data=data))
    command = [sys.executable, "-m", "benchmark.cli", "run", "--quiet", "--no-plots"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen([*command, str(configs["killed"])], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(parts.rglob("*.csv"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "per_frame.csv").exists()

    assert main(["run", str(configs["whole"]), "--quiet", "--no-plots"]) == 0
    resumed = subprocess.run([*command[:-2], str(configs["killed"]), "--no-plots"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "reused " in resumed.stdout and "(0% reused)" not in resumed.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "per_frame.csv"),
                                  pd.read_csv(tmp_path / "whole" / "per_frame.csv"))
