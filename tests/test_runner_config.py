"""TOML run configs: parsing, round trip, errors that name the file; cabench run/tables/plots on bad input."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.commands.run import parse_shard
from benchmark.config import load_config, parse_config, to_toml
from benchmark.runner import load_config as runner_load_config
from metrics.errors import CabenchError
from reports.publish import publish

CONFIG = """
[run]
out = "results"
protocol = "insta"
metrics = ["l2", "psnr"]
split = "test"
align = ["intersect"]
mask = true
batch_size = 4

[run.options]
flow = "dis"

[[datasets]]
name = "INSTA"
path = "data/insta"
kind = "insta"
sequences = ["bala", "wojtek"]

[[methods]]
name = "Ours"
adapter = "consistentavatar"
settings = { checkpoint = "ckpt/tiny", steps = 4 }

[[methods]]
name = "stage-1 proxy"
frames = "{root}/stage1/rgb"
"""


def test_config_is_parsed_with_paths_relative_to_the_file_and_round_trips(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    assert config.out == str(tmp_path / "results")
    assert config.datasets[0].path == str(tmp_path / "data/insta") and config.datasets[0].sequences == ("bala", "wojtek")
    assert config.methods[0].settings == {"checkpoint": "ckpt/tiny", "steps": 4}
    assert config.methods[1].frames == "{root}/stage1/rgb"
    assert (config.protocol, config.metrics, config.align, config.mask, config.batch_size) == (
        ("insta",), ("l2", "psnr"), ("intersect",), True, 4)
    assert config.options == {"flow": "dis"}
    again = tmp_path / "again" / "config.toml"
    again.parent.mkdir()
    again.write_text(to_toml(config))
    assert load_config(again) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nout = 'x'\nbogus = 1\n[[datasets]]\npath='d'\n[[methods]]\nname='a'\nframes='f'\n", "run.bogus: unknown key"),
        ("[[datasets]]\npath='d'\n", "no \\[\\[methods\\]\\]"),
        ("[[methods]]\nname='a'\nframes='f'\n", "no \\[\\[datasets\\]\\]"),
        ("[[datasets]]\npath='d'\n[[methods]]\nname='a'\n", "exactly one of 'adapter' or 'frames'"),
        ("[[datasets]]\npath='d'\n[[methods]]\nname='a'\nframes='f'\n[[methods]]\nname='a'\nframes='g'\n", "given twice: a"),
        ("[[datasets]]\nname='x'\n[[methods]]\nname='a'\nframes='f'\n", "datasets\\[0\\].path: required"),
        ("[run]\nbatch_size = 0\n[[datasets]]\npath='d'\n[[methods]]\nname='a'\nframes='f'\n", "batch_size"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CabenchError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.toml")]) == 2
    assert main(["tables", "--run", str(tmp_path)]) == 2
    assert main(["plots", "--timing", str(tmp_path / "nothing.csv")]) == 2
    assert main(["run", str(tmp_path / "absent.toml"), "--shard", "3/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("cabench: error: ") for line in err)
    assert "absent.toml: no such config file" in err[0] and "per_frame.csv" in err[1] and "nothing.csv" in err[2]


def test_parse_shard():
    assert parse_shard(None) is None and parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x/2", "1", "-1/2"):
        with pytest.raises(CabenchError, match="--shard"):
            parse_shard(bad)


def test_metric_options_are_checked_against_the_metrics_before_any_work(tmp_path):
    from benchmark.runner import run_config

    config = parse_config({"run": {"metrics": ["l2"], "options": {"net": "vgg"}, "out": "out"}, "datasets": [{"path": "d"}],
                           "methods": [{"name": "a", "frames": "f"}]}, base=tmp_path)
    with pytest.raises(CabenchError, match="net"):
        run_config(config, publish=publish)
    assert not (tmp_path / "out").exists()


def test_protocols_dataset_files_and_adapter_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    text = """
[run]
protocol = ["canonical", "insta"]
out = "out"
[[datasets]]
kind = "frames"
path = "gt"
mask = "masks"
landmarks = "lmk.npy"
[[methods]]
name = "a"
adapter = "consistentavatar"
settings = { checkpoint = "ckpt", stage1_rgb = "{root}/rgb" }
[[methods]]
name = "hub"
adapter = "consistentavatar"
settings = { checkpoint = "org/model" }
[[methods]]
name = "b"
adapter = "folder"
settings = { path = "renders/{sequence}" }
"""
    (tmp_path / "run.toml").write_text(text)
    monkeypatch.chdir(tmp_path.parent)  # the working directory plays no part
    config = runner_load_config(tmp_path / "run.toml")  # the adapters' path settings resolved too
    assert config.protocol == ("canonical", "insta")
    assert (config.datasets[0].mask, config.datasets[0].landmarks) == (str(tmp_path / "masks"), str(tmp_path / "lmk.npy"))
    assert config.methods[0].settings == {"checkpoint": str(tmp_path / "ckpt"), "stage1_rgb": "{root}/rgb"}
    assert config.methods[1].settings == {"checkpoint": "org/model"}  # no such folder: a hub id, kept
    assert config.methods[2].settings == {"path": str(tmp_path / "renders" / "{sequence}")}
    saved = tmp_path / "elsewhere" / "config.toml"
    saved.parent.mkdir()
    saved.write_text(to_toml(config))
    assert load_config(saved) == config
