"""Every summary value carries its block-bootstrap interval; the bootstrap settings of a run.

References: the summary's interval columns must be what the (separately tested) kernel
``mean_interval`` gives on the same frames, cut into the same sequences in frame order, and pandas
for the plain means and counts; the settings' TOML against ``tomllib``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.results import statistics
from benchmark.results.bootstrap import BootstrapSettings, saved_settings
from benchmark.results.summary import summarize
from metrics.errors import CabenchError
from tests.test_compare import SEQUENCES, per_frame_table

SETTINGS = BootstrapSettings(resamples=300, seed=4, level=0.9)


def _sequences(table: pd.DataFrame, method: str, protocol: str, column: str) -> list[np.ndarray]:
    """The per-sequence series of one summary value, sequences by name, frames in order."""
    rows = table[(table.method == method) & (table.protocol == protocol)]
    return [rows[rows.sequence == name].sort_values("frame")[column].to_numpy() for name in sorted(set(rows.sequence))]


def test_summary_intervals_equal_mean_interval_on_the_same_frames():
    table = per_frame_table().sample(frac=1.0, random_state=0)  # rows in any order
    summary = summarize(table, bootstrap=SETTINGS)
    assert {"ci_low", "ci_high", "n_frames", "n_sequences"} <= set(summary.columns)
    plain = table.groupby("method")[["psnr", "lpips"]].agg(["mean", "count"])
    for row in summary[summary.metric != "time_s"].itertuples():
        expected = statistics.mean_interval(_sequences(table, row.method, row.protocol, row.metric), SETTINGS.level,
                                            SETTINGS.resamples,
                                            statistics.estimate_seed(SETTINGS.seed, row.dataset, row.method, row.metric))
        assert (row.ci_low, row.ci_high, row.n_frames, row.n_sequences) == (expected.low, expected.high,
                                                                            expected.n_frames, expected.n_sequences)
        assert row.mean == pytest.approx(plain.loc[row.method, (row.metric, "mean")], rel=1e-12)
        assert row.n_frames == row.count == plain.loc[row.method, (row.metric, "count")]
        assert row.n_sequences == SEQUENCES and row.ci_low < row.mean < row.ci_high
    # the runtime is one measurement per rendered sequence: no interval
    runtime = summary[summary.metric == "time_s"]
    assert runtime[["ci_low", "ci_high"]].isna().all().all() and (runtime["n_sequences"] == SEQUENCES).all()


def test_summary_intervals_are_deterministic_and_independent_of_the_rest_of_the_run():
    table = per_frame_table()
    first = summarize(table, bootstrap=SETTINGS)
    reversed_rows = summarize(table.iloc[::-1], bootstrap=SETTINGS)  # groups in another order, same numbers
    pd.testing.assert_frame_equal(reversed_rows.sort_values(["method", "metric"], ignore_index=True),
                                  first.sort_values(["method", "metric"], ignore_index=True))
    assert not np.allclose(summarize(table, bootstrap=BootstrapSettings(300, 5, 0.9))["ci_low"].dropna(),
                           first["ci_low"].dropna())
    # another method, or the same frames under a second protocol, leave these numbers as they were
    extra = table[table.method == "ours"].assign(method="x", psnr=lambda rows: rows["psnr"] + 3)
    more = summarize(pd.concat([table, extra], ignore_index=True), bootstrap=SETTINGS)
    pd.testing.assert_frame_equal(more[more.method != "x"].reset_index(drop=True), first)
    both = summarize(pd.concat([table, table.assign(protocol="insta")], ignore_index=True), bootstrap=SETTINGS)
    again = both[both.protocol == "insta"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.drop(columns="protocol"), first.drop(columns="protocol"))


def test_the_level_and_resamples_follow_the_settings():
    table = per_frame_table()
    wide = summarize(table, bootstrap=BootstrapSettings(400, 0, 0.99)).query("metric == 'psnr'")
    narrow = summarize(table, bootstrap=BootstrapSettings(400, 0, 0.5)).query("metric == 'psnr'")
    assert ((wide.ci_high - wide.ci_low) > 2 * (narrow.ci_high - narrow.ci_low)).all()


def test_a_summary_by_sequence_has_one_sequence_per_value():
    table = per_frame_table()
    by_sequence = summarize(table, by=("dataset", "sequence", "method"), bootstrap=SETTINGS)
    scored = by_sequence[by_sequence.metric == "psnr"]
    assert len(scored) == 3 * SEQUENCES and (scored["n_sequences"] == 1).all()
    row = scored.iloc[0]
    expected = statistics.mean_interval(
        [table[(table.sequence == row.sequence) & (table.method == row.method)].sort_values("frame")["psnr"].to_numpy()],
        SETTINGS.level, SETTINGS.resamples,
        statistics.estimate_seed(SETTINGS.seed, row.dataset, row.sequence, row.method, "psnr"))
    assert (row.ci_low, row.ci_high) == (expected.low, expected.high)


@pytest.mark.parametrize(("table", "message"), [
    ({"resamples": 1}, "[run] bootstrap.resamples: must be an integer from 2 to 100,000, got 1"),
    ({"resamples": 2.5}, "[run] bootstrap.resamples: must be an integer from 2 to 100,000"),
    ({"seed": -1}, "[run] bootstrap.seed: must be a non-negative integer, got -1"),
    ({"level": 95}, "[run] bootstrap.level: must be a number between 0 and 1 (such as 0.95), got 95"),
    ({"level": True}, "[run] bootstrap.level: must be a number between 0 and 1"),
    ({"samples": 10}, "[run] bootstrap: unknown key(s) samples (known: level, resamples, seed)"),
    (2000, "[run] bootstrap: must be a table such as { resamples = 2000, seed = 0, level = 0.95 }"),
])
def test_a_bad_bootstrap_setting_is_one_line_naming_its_key(table, message):
    with pytest.raises(CabenchError) as error:
        BootstrapSettings.from_mapping(table, "run.toml: [run] bootstrap")
    assert str(error.value).startswith(f"run.toml: {message}") and "\n" not in str(error.value)


def test_the_run_config_carries_its_bootstrap_and_saves_it(tmp_path):
    import tomllib

    from benchmark.config import load_config, to_toml

    path = tmp_path / "run.toml"
    path.write_text('[run]\nbootstrap = { resamples = 500, level = 0.9 }\n[[datasets]]\npath = "d"\n'
                    '[[methods]]\nname = "m"\nframes = "f"\n')
    config = load_config(path)
    assert config.bootstrap == BootstrapSettings(resamples=500, seed=0, level=0.9)
    saved = to_toml(config)
    assert tomllib.loads(saved)["run"]["bootstrap"] == {"resamples": 500, "seed": 0, "level": 0.9}
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "config.toml").write_text(saved)
    assert load_config(tmp_path / "again" / "config.toml").bootstrap == config.bootstrap
    assert saved_settings(tmp_path / "again") == config.bootstrap  # what cabench tables reads from a run folder
    assert saved_settings(tmp_path / "absent") == BootstrapSettings()
    path.write_text('[run]\nbootstrap = { seed = "zero" }\n[[datasets]]\npath = "d"\n[[methods]]\nname = "m"\nframes = "f"\n')
    with pytest.raises(CabenchError, match=r"run.toml: run.bootstrap.seed: must be a non-negative integer, got 'zero'"):
        load_config(path)


def test_options_override_the_saved_settings_and_are_named_when_bad():
    settings = BootstrapSettings(500, 3, 0.9)
    assert settings.overridden(resamples=100) == BootstrapSettings(100, 3, 0.9)
    assert settings.overridden() == settings and settings.alpha == pytest.approx(0.1)
    with pytest.raises(CabenchError, match="^--level: must be a number between 0 and 1"):
        settings.overridden(level=1.5)
    assert settings.describe() == "90% intervals, 500 resamples, seed 3"
