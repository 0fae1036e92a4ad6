"""The run folder: one run at a time (the holder named, a dead holder's lock taken over), files cabench
did not write never replaced, output checked before any work, write failures one line with the stored
results kept, stale temporary files removed, and names that cannot leave the folder."""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

import pandas as pd
import pytest

from benchmark import runner
from benchmark.cli import main
from benchmark.config import DatasetConfig, MethodConfig, to_toml
from benchmark.results.names import safe_name
from metrics.errors import CabenchError
from reports.publish import publish
from tests.run_helpers import config, write_videos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def videos(tmp_path) -> dict:
    return write_videos(tmp_path / "videos", frames=4, size=32)


def _config_file(run, path: Path) -> Path:
    path.write_text(to_toml(run))
    return path


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cabench: error: "), lines
    return lines[0]


def _holder(out: Path, shard: str = "") -> subprocess.Popen:
    """Another process that holds the run folder's lock (the whole run, or shard ``I,N``) until killed."""
    code = ("import sys, time\nfrom benchmark.results.folder import RunFolder\nfolder = RunFolder(sys.argv[1])\n"
            "folder.prepare()\nshard = tuple(map(int, sys.argv[2].split(','))) if sys.argv[2] else None\n"
            "folder.lock(shard).acquire()\nprint('held', flush=True)\ntime.sleep(300)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(out), shard], stdout=subprocess.PIPE, text=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(videos, tmp_path, capsys):
    run = config(videos, tmp_path / "run")
    path = _config_file(run, tmp_path / "run.toml")
    holder = _holder(tmp_path / "run")
    try:
        assert main(["run", str(path), "--quiet", "--no-plots"]) == 2
        line = _error(capsys)
        assert f"pid {holder.pid} on {socket.gethostname()}" in line and "another cabench run" in line
        assert not (tmp_path / "run" / "per_frame.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(path), "--quiet", "--no-plots"]) == 0  # SIGKILLed: its lock went with it
    assert (tmp_path / "run" / "per_frame.csv").exists()


def test_shards_of_one_run_work_side_by_side_and_a_second_copy_of_a_shard_is_refused(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    holder = _holder(tmp_path / "run", "0,2")
    try:
        assert runner.run_config(run, progress=False, plots=False, report=False, log=lambda m: None, shard=(1, 2), publish=publish) is None
        with pytest.raises(CabenchError, match=rf"shard 0/2: pid {holder.pid}"):
            runner.run_config(run, progress=False, log=lambda m: None, shard=(0, 2), publish=publish)
        with pytest.raises(CabenchError, match="another cabench run is using this folder"):
            runner.run_config(run, progress=False, log=lambda m: None, publish=publish)
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_of_other_files_is_refused_and_left_untouched(videos, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "per_frame.csv").write_text("my own numbers\n")
    path = _config_file(config(videos, out), tmp_path / "run.toml")
    assert main(["run", str(path), "--quiet"]) == 2
    assert "holds files cabench did not write (per_frame.csv)" in _error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["per_frame.csv"]
    assert (out / "per_frame.csv").read_text() == "my own numbers\n"


def test_outputs_that_cannot_be_folders_are_refused_before_any_work(videos, tmp_path, capsys):
    gt, pred = videos["root"] / "gt" / "seq", videos["root"] / "noisy" / "seq"
    file = tmp_path / "file.txt"
    file.write_text("x")
    for out in (file, Path("/dev/null")):
        assert main(["eval", "--gt", str(gt), "--pred", f"a={pred}", "--out", str(out), "--quiet"]) == 2
        assert f"{out}: not a folder" in _error(capsys)
    assert file.read_text() == "x"
    run = config(videos, tmp_path / "run")
    path = _config_file(run, tmp_path / "run.toml")
    assert main(["run", str(path), "--quiet", "--no-plots"]) == 0
    for name, make in (("parts", lambda p: p.write_text("x")), ("per_frame.csv", lambda p: p.mkdir())):
        target = tmp_path / "run" / name
        os.replace(target, tmp_path / "aside") if target.is_dir() else target.unlink()
        make(target)
        assert main(["run", str(path), "--quiet", "--no-plots"]) == 2
        assert str(target) in _error(capsys)
        target.unlink() if target.is_file() else target.rmdir()
        if (tmp_path / "aside").exists():
            os.replace(tmp_path / "aside", target)


def _as_unprivileged(action) -> tuple[int, str]:
    """``action()`` (returning an exit status) run by a user that read-only folders refuse: this user
    when it is not root, else a forked child that has dropped to ``nobody``. Returns (status, stderr)."""
    if os.geteuid() != 0:
        stream = io.StringIO()
        with redirect_stderr(stream):
            return action(), stream.getvalue()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: no return from here
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            stream = io.StringIO()
            with redirect_stderr(stream):
                status = action()
            os.write(write, f"{status}\n{stream.getvalue()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    status, _, err = text.partition("\n")
    return int(status), err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_read_only_outputs_are_one_line_before_any_work():
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="cabench-ro-"))
    try:
        base.chmod(0o755)
        videos = write_videos(base / "videos", frames=4, size=32)
        gt, pred = videos["root"] / "gt" / "seq", videos["root"] / "noisy" / "seq"
        locked = base / "locked"
        locked.mkdir()
        (locked / "empty").mkdir()
        run = base / "run"
        assert main(["eval", "--gt", str(gt), "--pred", f"a={pred}", "--metrics", "l2", "--out", str(run), "--quiet",
                     "--no-plots"]) == 0
        (run / "parts").chmod(0o555)
        locked.chmod(0o555)
        (locked / "empty").chmod(0o555)
        for out in (locked / "new", locked / "empty", run):
            status, err = _as_unprivileged(lambda out=out: main(["eval", "--gt", str(gt), "--pred", f"b={pred}", "--metrics",
                                                                 "l2", "--out", str(out), "--quiet"]))
            lines = err.strip().splitlines()
            assert status == 2 and len(lines) == 1 and "cannot write" in lines[0], (out, err)
        assert not (locked / "new").exists() and not list((locked / "empty").iterdir())
    finally:
        for folder in (base / "locked", base / "locked" / "empty", base / "run" / "parts"):
            if folder.exists():
                folder.chmod(0o755)
        import shutil

        shutil.rmtree(base)


def test_a_write_failure_mid_run_is_one_line_and_keeps_what_was_stored(videos, tmp_path, monkeypatch, capsys):
    import benchmark.results.store as store

    run = config(videos, tmp_path / "run", batch_size=2)
    path = _config_file(run, tmp_path / "run.toml")
    calls = {"n": 0}

    def full_disk(file, mode="r", *args, **kwargs):
        if "a" in mode:
            calls["n"] += 1
            if calls["n"] > 4:
                raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(store, "open", full_disk, raising=False)
    assert main(["run", str(path), "--quiet", "--no-plots"]) == 2
    line = _error(capsys)
    assert ".log: cannot write (No space left on device); the results stored before it are kept" in line
    monkeypatch.undo()
    resumed = runner.run_config(run, progress=False, plots=False, report=False, log=lambda m: None, publish=publish)
    assert resumed.reused_frames == 3 * 2 + 2  # l2, psnr, ssim of the first batch (2 frames), l2 of the second
    expected = runner.run_config(config(videos, tmp_path / "clean", batch_size=2), progress=False, plots=False,
                                 report=False, log=lambda m: None, publish=publish)
    pd.testing.assert_frame_equal(resumed.per_frame, expected.per_frame)


def test_stale_temporary_files_are_removed_when_a_run_starts(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    runner.run_config(run, progress=False, plots=False, report=False, log=lambda m: None, publish=publish)
    out = tmp_path / "run"
    stale = [out / ".per_frame.csv.ab12cd_9.tmp", out / "parts" / "synthetic" / "seq" / "noisy" / "canonical" / ".l2.csv.zz99yy88.tmp"]
    for path in stale:
        path.write_text("half")
    (out / "notes.tmp").write_text("mine")  # not a name atomic writes make: kept
    runner.run_config(run, progress=False, plots=False, report=False, log=lambda m: None, publish=publish)
    assert not any(path.exists() for path in stale) and (out / "notes.tmp").exists()
    assert not [p for p in out.rglob("*.tmp") if p.name != "notes.tmp"]


HOSTILE = ("..", ".", "../../escaped", "/tmp/absolute", "a/b", ".cabench", "..\\x", "~", "")


def test_safe_names_stay_one_component_inside_the_folder(tmp_path):
    from benchmark.results.folder import RunFolder

    names = {safe_name(n) for n in HOSTILE}
    assert len(names) == len(HOSTILE)  # distinct names stay distinct
    for name in names:
        assert name not in (".", "..") and "/" not in name and not name.startswith(".") and name
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    folder = RunFolder(tmp_path / "run")
    folder.prepare()
    assert folder.cache.is_dir() and folder.is_run_folder()
    for dataset in HOSTILE:
        for sequence in HOSTILE:
            cache = folder.truth_cache(dataset, sequence)
            assert cache.resolve().parent.parent == folder.cache  # <out>/cache/<dataset>/<sequence>
            part = folder.part_folder(dataset, sequence, "..", "/etc")
            assert part.resolve().is_relative_to(folder.parts)


def test_hostile_dataset_and_method_names_cannot_write_outside_the_run_folder(videos, tmp_path):
    run = config(videos, tmp_path / "nested" / "run")
    frames = run.methods[0].frames
    methods = tuple(MethodConfig(name=name, frames=frames) for name in HOSTILE[:6])
    run = run.replace(methods=methods, datasets=(DatasetConfig(name="..", path=run.datasets[0].path, kind="frames"),))
    absolute_existed = Path("/tmp/absolute").exists()
    before = {p for p in tmp_path.rglob("*")}
    report = runner.run_config(run, progress=False, plots=True, report=True, log=lambda m: None, publish=publish)
    assert list(dict.fromkeys(report.per_frame["method"])) == list(HOSTILE[:6])
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if not p.resolve().is_relative_to((tmp_path / "nested" / "run").resolve())
               and p != tmp_path / "nested"]
    assert outside == []
    assert Path("/tmp/absolute").exists() == absolute_existed
