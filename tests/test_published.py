"""A run whose outputs are up to date (benchmark.engine.published): a fully reused `cabench eval` prints
them without loading torch or the other heavy libraries, and anything its outputs depend on (an input,
an output file, a weight file, the options) makes it compute and publish again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_helpers import write_videos

from benchmark.cli import main
from benchmark.engine.published import STAMP_FILE, publication_stamp, published
from benchmark.io import write_frames

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "diffusers", "transformers", "lpips", "dlib", "scipy", "matplotlib", "accelerate",
         "skimage")
PROBE = f"""
import json, sys
from benchmark.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": [name for name in {HEAVY!r} if name in sys.modules]}}))
"""


@pytest.fixture()
def videos(tmp_path):
    return write_videos(tmp_path / "videos", frames=6, size=48)


def eval_args(videos, out: Path) -> list[str]:
    root = videos["root"]
    return ["eval", "--gt", str(root / "gt" / "seq"), "--pred", f"noisy={root / 'noisy' / 'seq'}",
            "--metrics", "l2,psnr,ssim", "--out", str(out)]


def probe(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"stdout": done.stdout}


def test_a_fully_reused_eval_imports_no_heavy_library(videos, tmp_path):
    out = tmp_path / "run"
    first = probe(eval_args(videos, out))  # computes and publishes: the metrics and plots load their libraries
    assert first["code"] == 0 and {"torch", "matplotlib"} <= set(first["loaded"])
    again = probe(eval_args(videos, out))
    assert again["code"] == 0 and again["loaded"] == [], again["loaded"]
    assert "up to date" in again["stdout"] and "| noisy |" in again["stdout"]  # the tables are printed as before


def test_anything_the_outputs_depend_on_makes_the_run_publish_again(videos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    out = tmp_path / "run"
    args = [*eval_args(videos, out), "--no-plots"]
    assert main(args) == 0
    assert "up to date" not in capsys.readouterr().out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    summary = (out / "summary.csv").read_text()

    (out / "table1.md").unlink()  # an output gone: written again
    assert main(args) == 0 and "up to date" not in capsys.readouterr().out and (out / "table1.md").exists()

    (tmp_path / "weights" / "alexnet-owt-7be5be79.pth").write_bytes(b"not yet checked")  # a weight file appears
    assert main(args) == 0 and "up to date" not in capsys.readouterr().out

    noisy = videos["noisy"].copy()
    noisy[0] = 255 - noisy[0]  # an input's content changes: its numbers are computed again
    write_frames(videos["root"] / "noisy" / "seq", noisy)
    assert main(args) == 0 and "up to date" not in capsys.readouterr().out
    assert (out / "summary.csv").read_text() != summary

    assert main([*args, "--protocol", "canonical,nerface"]) == 0  # another config
    assert "up to date" not in capsys.readouterr().out
    assert main([*args, "--force"]) == 0 and "up to date" not in capsys.readouterr().out


def test_the_stamp_names_the_outputs_and_a_changed_output_is_not_up_to_date(videos, tmp_path):
    from benchmark.cli import build_parser
    from benchmark.commands.eval import eval_config

    out = tmp_path / "run"
    args = [*eval_args(videos, out), "--no-plots"]
    assert main(args) == 0
    config = eval_config(build_parser().parse_args(args))
    meta = out / ".cabench"
    stamp = publication_stamp(config, {}, plots=False, report=False)  # stored frames: no adapter
    record = published(meta, out, stamp)
    assert record is not None and {"per_frame.csv", "summary.csv", "table1.md"} <= set(record["outputs"])
    assert published(meta, out, stamp + "x") is None
    text = (out / "summary.csv").read_text()
    (out / "summary.csv").write_text(text.replace("noisy", "edited"))
    assert published(meta, out, stamp) is None
    assert np.isfinite(json.loads((meta / STAMP_FILE).read_text())["results"])
