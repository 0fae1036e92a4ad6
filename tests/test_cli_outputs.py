"""What `cabench eval` and `cabench run` print and write: only the tables the run has, both tables and the
files in the last line for `run` as for `eval`, a bare --pred path named by its stem, time_s refused,
each other metric under its own heading, and the missing-weight message."""

from __future__ import annotations

import pandas as pd
import pytest
from run_helpers import write_videos

from benchmark.cli import main
from reports import tables


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_videos(tmp_path_factory.mktemp("videos"), frames=6, size=48)


def test_no_empty_table1_when_only_temporal_metrics_were_asked(videos, tmp_path, capsys):
    root, out = videos["root"], tmp_path / "run"
    assert main(["eval", "--gt", str(root / "gt" / "seq"), "--pred", f"noisy={root / 'noisy' / 'seq'}",
                 "--metrics", "tof", "--out", str(out), "--no-plots", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Table 1" not in printed and "Other metrics: temporal consistency" in printed
    assert not (out / "table1.md").exists() and not (out / "table2.md").exists() and (out / "metrics.md").exists()
    assert printed.strip().splitlines()[-1].endswith("(per_frame.csv, summary.csv, missing.csv, metrics .md .tex .csv)")
    # the same folder asked for image metrics again: Table 1 is back, the temporal table is gone
    assert main(["eval", "--gt", str(root / "gt" / "seq"), "--pred", f"noisy={root / 'noisy' / 'seq'}",
                 "--metrics", "psnr", "--out", str(out), "--no-plots", "--quiet"]) == 0
    assert (out / "table1.md").exists() and not (out / "metrics.md").exists()


def test_a_bare_pred_path_is_named_by_its_stem_and_time_s_is_refused(videos, tmp_path, capsys):
    root = videos["root"]
    assert main(["eval", "--gt", str(root / "gt" / "seq"), "--pred", str(root / "blurred" / "seq"),
                 "--metrics", "psnr", "--out", str(tmp_path / "run"), "--no-plots", "--quiet"]) == 0
    assert set(pd.read_csv(tmp_path / "run" / "per_frame.csv")["method"]) == {"seq"}  # the folder's name
    capsys.readouterr()
    assert main(["eval", "--gt", str(root / "gt" / "seq"), "--pred", f"a={root / 'noisy' / 'seq'}",
                 "--metrics", "psnr,time_s", "--out", str(tmp_path / "other"), "--quiet"]) == 2
    assert "time_s is measured while a method renders" in capsys.readouterr().err
    assert main(["eval", "--gt", str(root / "gt" / "seq"), "--pred", str(tmp_path / "absent"),
                 "--out", str(tmp_path / "third"), "--quiet"]) == 2
    assert "expected NAME=PATH" in capsys.readouterr().err


def test_run_prints_both_tables_and_names_every_file_as_eval_does(videos, tmp_path, capsys):
    from benchmark.config import to_toml
    from tests.run_helpers import config

    path = tmp_path / "run.toml"
    path.write_text(to_toml(config(videos, tmp_path / "out", metrics=("l2", "psnr", "tof"))))
    assert main(["run", str(path), "--quiet", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "Table 1: image quality" in printed and "Other metrics: temporal consistency" in printed
    last = printed.strip().splitlines()[-1]
    assert "missing.csv" in last and "table1/table2/metrics .md .tex .csv" not in last
    assert "table1/metrics .md .tex .csv" in last


def test_each_other_metric_is_listed_under_its_own_heading():
    summary = pd.DataFrame({"dataset": "d", "method": "A", "metric": ["l1", "psnr"], "protocol": "canonical",
                            "mean": [0.1, 20.0], "std": 0.0, "count": 3, "frames": 3})
    assert tables.extra_table(summary).title == "Other metrics: image quality"
    mixed = pd.concat([summary, summary.assign(metric="tof")])
    assert tables.extra_table(mixed).title == "Other metrics: image quality and temporal consistency"


def test_the_missing_weight_message_fits_the_folders_it_names(tmp_path, monkeypatch):
    from metrics.errors import WeightsMissingError
    from metrics.weights import find_weight, known_weights

    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weight = next(w for w in known_weights() if not w.folders)
    with pytest.raises(WeightsMissingError) as error:
        find_weight(weight.key)
    message = str(error.value)
    # the folders it looked in, then how to get the file: the manifest's download command (or its steps)
    assert str(tmp_path) in message and "one of them" not in message
    assert f"cabench weights --download {weight.key}" in message or "CABENCH_WEIGHTS" in message


def test_cabench_weights_names_the_cabench_weights_folder_even_when_unset(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CABENCH_WEIGHTS", raising=False)
    assert main(["weights"]) == 0
    assert "$CABENCH_WEIGHTS (not set)" in capsys.readouterr().out.splitlines()[0]
    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path / "mine"))
    assert main(["weights"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert str(tmp_path / "mine") in first and "not set" not in first
