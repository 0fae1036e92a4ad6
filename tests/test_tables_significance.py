"""Tables with intervals and marks: the best in bold, a dagger on the values not significantly worse
than it, sanity rows apart, ``cabench tables --ci``.

References: the marks must be the decisions of ``compare_table`` (tested against scipy, statsmodels
and simulations) with the best as baseline; the best must be pandas' best mean; the printed
intervals must be the summary's ``ci_low``/``ci_high`` at the metric's precision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.significance import compare_table, versus_best
from benchmark.results.summary import summarize
from reports import tables
from tests.test_compare import per_frame_table

SETTINGS = BootstrapSettings(resamples=300, seed=2, level=0.95)
# ours is best; rig is 0.05 dB behind (not significantly worse), insta 1 dB (worse); the sanity row beats all
SHIFTS = {"ours": 1.0, "insta": 0.0, "rig": 0.95, "blur (sanity)": 3.0}
ROLES = {"blur (sanity)": "sanity"}
COMPETING = ["ours", "insta", "rig"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return per_frame_table(seed=3, methods=SHIFTS)


@pytest.fixture(scope="module")
def summary(table) -> pd.DataFrame:
    return summarize(table, bootstrap=SETTINGS)


def _cells(text: str) -> dict[str, list[str]]:
    """{method: cells after the method} of a Markdown table."""
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    return {row[1]: row[2:] for row in cells}


def test_marks_are_compare_tables_decisions_against_the_best(table):
    directions = {"psnr": True, "lpips": False}
    marks = versus_best(table, directions, COMPETING, alpha=SETTINGS.alpha, resamples=SETTINGS.resamples,
                        seed=SETTINGS.seed)
    competing = table[table.method.isin(COMPETING)]
    means = competing.groupby("method")[["psnr", "lpips"]].mean()
    for column, higher in directions.items():
        rows = marks[marks.metric == column].set_index("method")
        best = means[column].idxmax() if higher else means[column].idxmin()
        assert set(rows["best"]) == {best} == {"ours"}
        assert rows.loc[best, "not_worse"] and rows.loc[best, "difference"] == 0
        reference = compare_table(competing, {column: higher}, baseline=best, alpha=SETTINGS.alpha,
                                  resamples=SETTINGS.resamples, seed=SETTINGS.seed).set_index("method_a")
        for method, found in reference.iterrows():
            assert rows.loc[method, "not_worse"] == (not (found["significant"] and found["better"] == best))
            assert (rows.loc[method, "difference"], rows.loc[method, "p_holm"]) == (found["difference"], found["p_holm"])
        assert rows.loc["rig", "not_worse"] and not rows.loc["insta", "not_worse"]
    assert "blur (sanity)" not in set(marks["method"])


def test_the_best_is_bold_the_marked_carry_a_dagger_and_sanity_rows_stay_apart(table, summary):
    marks = tables.table_marks(table, summary, ROLES, SETTINGS)
    uncertainty = tables.Uncertainty(None, marks, SETTINGS)
    text = tables.markdown(tables.TABLE1, summary, roles=ROLES, uncertainty=uncertainty)
    cells = _cells(text)  # columns: L2, PSNR, SSIM, LPIPS, time
    assert cells["ours"][1].startswith("**") and cells["ours"][3].startswith("**")
    assert cells["rig"][1].endswith("†") and cells["rig"][3].endswith("†") and "**" not in cells["rig"][1]
    assert "†" not in cells["insta"][1] and "**" not in cells["insta"][1]
    sanity = cells["blur (sanity)"]
    assert "**" not in sanity[1] and "†" not in sanity[1] and "**" not in sanity[3]
    assert "†: not significantly worse than the best (bold) at alpha 0.05" in text
    assert "Sanity rows (blur (sanity)) take no part in the best value or the marks." in text
    assert r"$^\dagger$" in tables.latex(tables.TABLE1, summary, roles=ROLES, uncertainty=uncertainty)
    # without roles, the degradation competes and takes the bold
    alone = _cells(tables.markdown(tables.TABLE1, summary))
    assert alone["blur (sanity)"][1].startswith("**") and not alone["ours"][1].startswith("**")


def test_ci_shows_the_summarys_interval(table, summary):
    psnr = summary[summary.metric == "psnr"].set_index("method")
    low, high = psnr.loc["insta", "ci_low"], psnr.loc["insta", "ci_high"]
    mean = psnr.loc["insta", "mean"]
    pm = _cells(tables.markdown(tables.TABLE1, summary, uncertainty=tables.Uncertainty("pm", None, SETTINGS)))
    assert pm["insta"][1] == f"{mean:.2f} ± {(high - low) / 2:.2f}"
    bounds = _cells(tables.markdown(tables.TABLE1, summary, uncertainty=tables.Uncertainty("bounds", None, SETTINGS)))
    assert bounds["insta"][1] == tables.markdown_escape(f"{mean:.2f} [{low:.2f}, {high:.2f}]")  # \[ \]: literal brackets
    text = tables.markdown(tables.TABLE1, summary, uncertainty=tables.Uncertainty("pm", None, SETTINGS))
    assert "±: half-width of the 95% interval of the mean" in text and "300 resamples, seed 2" in text
    assert rf"{mean:.2f} $\pm$ {(high - low) / 2:.2f}" in tables.latex(
        tables.TABLE1, summary, uncertainty=tables.Uncertainty("pm", None, SETTINGS))
    frame = tables.csv_frame(tables.TABLE1, summary, roles=ROLES,
                             uncertainty=tables.Uncertainty(None, tables.table_marks(table, summary, ROLES, SETTINGS)))
    rows = frame[frame.column == "psnr"].set_index("method")
    assert (rows.loc["insta", "ci_low"], rows.loc["insta", "ci_high"]) == (low, high)
    assert rows["not_worse_than_best"].to_dict() == {"ours": True, "insta": False, "rig": True, "blur (sanity)": None}
    assert rows["best"].to_dict() == {"ours": True, "insta": False, "rig": False, "blur (sanity)": None}


def test_a_half_width_below_the_precision_keeps_one_digit():
    summary = pd.DataFrame({"dataset": "d", "method": ["A", "B"], "metric": "ssim", "protocol": "canonical",
                            "mean": [0.9512, 0.93], "count": 10, "frames": 10, "ci_low": [0.9510, 0.925],
                            "ci_high": [0.9514, 0.935]})
    cells = _cells(tables.markdown(tables.TABLE1, summary, uncertainty=tables.Uncertainty("pm")))
    assert cells["A"][2] == "**0.95** ± 0.0002" and cells["B"][2] == "0.93 ± 0.01"
    with pytest.raises(ValueError, match="ci must be one of pm, bounds"):
        tables.Uncertainty("sd")


def test_cabench_tables_ci_uses_the_runs_bootstrap_settings(tmp_path, table, capsys):
    table.to_csv(tmp_path / "per_frame.csv", index=False)
    (tmp_path / "config.toml").write_text("[run]\nbootstrap = { resamples = 200, seed = 7 }\n")
    assert main(["tables", "--run", str(tmp_path), "--ci", "bounds"]) == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(tmp_path / "table1.csv").query("column == 'psnr'").set_index("method")
    expected = summarize(table, bootstrap=BootstrapSettings(200, 7, 0.95)).query("metric == 'psnr'").set_index("method")
    np.testing.assert_allclose(written.loc[list(SHIFTS), "ci_low"], expected.loc[list(SHIFTS), "ci_low"], rtol=1e-12)
    assert rf"\[{expected.loc['ours', 'ci_low']:.2f}, {expected.loc['ours', 'ci_high']:.2f}\]" in printed
    assert "200 resamples, seed 7" in printed
    assert main(["tables", "--run", str(tmp_path), "--ci", "--seed", "8", "--resamples", "50"]) == 0
    assert "± " in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "table1.csv").query("column == 'psnr'")["ci_low"].iloc[0] != written["ci_low"].iloc[0]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--level", "1.5"], "--level: must be a number between 0 and 1 (such as 0.95), got 1.5"),
    (["--seed", "-2"], "--seed: must be a non-negative integer, got -2"),
])
def test_cabench_tables_bad_settings_are_one_line(tmp_path, table, capsys, arguments, message):
    table.to_csv(tmp_path / "per_frame.csv", index=False)
    assert main(["tables", "--run", str(tmp_path), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "table1.md").exists()
