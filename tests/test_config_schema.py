"""Run configs are checked against the schema before any work: every value of the wrong type, unknown
key or value not allowed is one line naming the file, the key path and what was expected."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.config import RunConfig, load_config, to_toml
from benchmark.runner import load_config as runner_load_config
from metrics.errors import CabenchError

VALID = """
[run]
out = "out"
metrics = ["l2", "psnr"]
mask = false
batch_size = 4

[[datasets]]
path = "data"
sequences = ["astronaut"]

[[methods]]
name = "proxy"
frames = "{root}/stage1/rgb"

[[methods]]
name = "flicker"
adapter = "degraded"
settings = { degradation = "flicker", strength = 0.05 }
"""


def _write(tmp_path, old: str, new: str):
    assert old in VALID
    path = tmp_path / "run.toml"
    path.write_text(VALID.replace(old, new, 1))
    return path


def test_the_valid_config_loads(tmp_path):
    config = load_config(_write(tmp_path, "", ""))
    assert config.mask is False and config.batch_size == 4 and config.protocol == ("canonical",) and config.datasets[0].sequences == ("astronaut",)
    assert config.methods[1].settings == {"degradation": "flicker", "strength": 0.05}


@pytest.mark.parametrize(("old", "new", "expected"), [
    # values that were coerced and changed the numbers
    ("mask = false", 'mask = "false"', 'run.mask: expected true or false, got "false" (a string)'),
    ("batch_size = 4", "batch_size = true", "run.batch_size: expected an integer, got true"),
    # values that gave tracebacks
    ('[run]\nout = "out"\nmetrics = ["l2", "psnr"]\nmask = false\nbatch_size = 4\n', 'run = "x"\n', "run: expected a table"),
    ('metrics = ["l2", "psnr"]', "metrics = 5", "run.metrics: expected a list [...], got 5"),
    ("mask = false", "align = 5", "run.align: expected a list [...], got 5"),
    ('out = "out"', "out = 5", "run.out: expected a string, got 5"),
    ('frames = "{root}/stage1/rgb"', "frames = 5", "methods[0].frames: expected a string, got 5"),
    ("mask = false", "options = [1]", "run.options: expected a table { key = value }, got [1]"),
    ('settings = { degradation = "flicker", strength = 0.05 }', 'settings = "flicker"',
     'methods[1].settings: expected a table { key = value }, got "flicker" (a string)'),
    ("strength = 0.05", 'strength = "lots"', 'methods[1].settings.strength: expected a number, got "lots" (a string)'),
    ('sequences = ["astronaut"]', 'sequences = "astronaut"',
     'datasets[0].sequences: expected a list, e.g. ["astronaut"], got "astronaut" (a string)'),
    # keys and values not allowed
    ("batch_size = 4", "batch_size = 0", "run.batch_size: expected a value >= 1, got 0"),
    ("batch_size = 4", "batch_size = 4.0", "run.batch_size: expected an integer, got 4.0"),
    ("mask = false", 'device = "mps"', "run.device: device 'mps': not a device this harness runs on; choose cpu, cuda, cuda:N or auto"),
    ("mask = false", 'protocol = "nope"', "run.protocol: unknown protocol 'nope'; choose from canonical"),
    ("mask = false", 'protocol = ["canonical", 5]', "run.protocol[1]: expected a string, got 5"),
    ('metrics = ["l2", "psnr"]', 'metrics = ["l2", "l3"]', "run.metrics: unknown metric 'l3'"),
    ('metrics = ["l2", "psnr"]', "metrics = []", "run.metrics: no metric given"),
    ("mask = false", 'align = ["stretch"]', "run.align[0]: expected one of 'intersect' or 'resize', got \"stretch\""),
    ('path = "data"', 'path = "data"\nkind = "insat"', "datasets[0].kind: unknown dataset kind 'insat'; choose from insta"),
    ('path = "data"', 'path = "data"\ncolour = 1', "datasets[0].colour: unknown key (known: audio, audio_offset, kind, landmarks, mask, name, path, sequences)"),
    ('adapter = "degraded"', 'adapter = "degradedd"', "methods[1].adapter: unknown adapter 'degradedd' (did you mean 'degraded'?)"),
    ("strength = 0.05", "strenght = 0.05", "methods[1].settings.strenght: unknown setting (known: degradation, name, "),
    ("strength = 0.05", "seed = true", "methods[1].settings.seed: expected an integer, got true"),
    ('degradation = "flicker"', 'degradation = "flick"',
     "methods[1].settings: adapter 'degraded': degradation 'flick'; choose from oversmooth, flicker"),
    ('frames = "{root}/stage1/rgb"', 'frames = "{root}/stage1/rgb"\nadapter = "folder"', "methods[0]: method 'proxy' needs exactly one of"),
    ('name = "flicker"', 'name = "proxy"', "the top level: method name(s) given twice: proxy"),
])
def test_each_violation_names_the_file_the_key_path_and_what_was_expected(tmp_path, old, new, expected):
    path = _write(tmp_path, old, new)
    with pytest.raises(CabenchError) as error:
        runner_load_config(path)
    lines = str(error.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any(line.startswith(f"{path}: {expected}") for line in lines), lines


def test_every_violation_is_its_own_line_and_nothing_is_created(tmp_path, capsys):
    path = _write(tmp_path, "mask = false\nbatch_size = 4", 'mask = "false"\nbatch_size = true')
    path.write_text(path.read_text().replace("strength = 0.05", 'strength = "lots"'))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith(f"cabench: error: {path}: ") for line in err)
    assert [line[len(f"cabench: error: {path}: "):].split(":")[0] for line in err] == [
        "run.batch_size", "run.mask", "methods[1].settings.strength"]
    assert not (tmp_path / "out").exists()
    path.write_text(VALID.replace("strength = 0.05", 'strength = "lots"'))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'cabench: error: {path}: methods[1].settings.strength: expected a number, got "lots" (a string)']
    assert not (tmp_path / "out").exists()


def test_protocols_one_all_or_several(tmp_path):
    for text, expected in (('"all"', ("all",)), ('"canonical"', ("canonical",)), ('["canonical", "insta"]', ("canonical", "insta")),
                           ('"canonical,insta"', ("canonical", "insta"))):
        assert load_config(_write(tmp_path, "mask = false", f"protocol = {text}")).protocol == expected


def test_the_loaded_config_is_the_frozen_schema_and_saves_from_its_fields(tmp_path):
    """The pydantic model is the config the engine receives: frozen, its lists tuples, its TOML written from
    ``model_dump()`` (every field of the model, each once) and read back, from another folder, equal."""
    import tomllib

    from pydantic import ValidationError

    path = _write(tmp_path, "mask = false", 'mask = false\nprotocol = "canonical,insta"\nalign = "intersect"\n'
                  'bootstrap = { resamples = 100 }\noptions = { flow = "dis", lpips = { net = "vgg" } }')
    path.write_text(path.read_text().replace('path = "data"', 'path = "data"\nkind = "insta"\naudio = "{sequence}.wav"\n'
                                                               'audio_offset = 0.5'))
    config = load_config(path)
    assert config.protocol == ("canonical", "insta") and config.align == ("intersect",)
    assert config.datasets[0].name == "data" and config.datasets[0].audio == str(tmp_path / "{sequence}.wav")
    with pytest.raises(ValidationError, match="frozen"):
        config.batch_size = 2
    with pytest.raises(ValidationError, match="frozen"):
        config.methods[0].frames = "elsewhere"
    text = to_toml(config)
    document = tomllib.loads(text)
    assert list(document["run"]) == [name for name in RunConfig.model_fields if name not in ("datasets", "methods")]
    assert document["run"]["options"] == {"flow": "dis", "lpips": {"net": "vgg"}}
    assert document["datasets"][0]["audio_offset"] == 0.5 and "mask" not in document["datasets"][0]  # None: left out
    saved = tmp_path / "run" / "config.toml"
    saved.parent.mkdir()
    saved.write_text(text)
    assert load_config(saved) == config
