"""`cabench infer`: the CPU thread policy of `demo` and `time` (one torch thread unless OMP_NUM_THREADS is
set), and `--quiet` silences diffusers' and transformers' loading bars as well as its own."""

from __future__ import annotations

import pytest
import torch
from reference_helpers import make_sequence

import reference
from benchmark.cli import main
from reference import render


@pytest.fixture()
def spied(monkeypatch):
    """The real render_sequence, recording the torch thread count it runs at; a fresh load of the pipeline."""
    threads: list[int] = []
    real = render.render_sequence

    def spy(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(reference, "render_sequence", spy, raising=False)
    monkeypatch.setattr(render, "_LAST_LOADED", {})  # load from disk, as a fresh process does
    return threads


@pytest.mark.parametrize("quiet", [False, True])
def test_infer_renders_on_one_cpu_thread_and_quiet_means_no_bars(tmp_path, monkeypatch, capfd, spied, quiet):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    sequence = make_sequence(tmp_path / "seq", frames=2, size=32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["infer", "--data", str(sequence), "--split", "all", "--steps", "1", "--device", "cpu",
                     "--output", str(tmp_path / "out"), *(["--quiet"] if quiet else [])]) == 0
        assert spied == [1] and torch.get_num_threads() == 2  # one thread while rendering; the caller's after
    finally:
        torch.set_num_threads(before)
    err = capfd.readouterr().err
    if quiet:
        assert "Loading" not in err and "it/s" not in err, err[-500:]
    else:  # the check can fail: without --quiet the libraries' loading bars and the render bar show
        assert "Loading pipeline components" in err and "render" in err


def test_omp_num_threads_is_respected(tmp_path, monkeypatch, spied):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    sequence = make_sequence(tmp_path / "seq", frames=2, size=32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["infer", "--data", str(sequence), "--split", "all", "--steps", "1", "--device", "cpu",
                     "--output", str(tmp_path / "out"), "--quiet"]) == 0
        assert spied == [2]
    finally:
        torch.set_num_threads(before)
