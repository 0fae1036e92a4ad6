"""Paired comparisons of a result table, and `cabench compare` end to end.

References: pandas for the means, counts and per-sequence means the statistics must be computed
from, scipy's Wilcoxon test, statsmodels' Holm correction, and the metric registry's directions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from scipy.stats import wilcoxon

from benchmark.cli import main
from benchmark.results.significance import compare_table

SEQUENCES, FRAMES = 6, 80
DIRECTIONS = {"psnr": True, "lpips": False}  # the registry's, given by the caller


def per_frame_table(seed: int = 0, methods: dict[str, float] | None = None) -> pd.DataFrame:
    """A run's result table: correlated per-frame PSNR and LPIPS of methods that differ by known
    shifts (dB) on 6 sequences of 80 frames, with a few undefined LPIPS frames."""
    methods = methods or {"ours": 1.0, "insta": 0.0, "rig": 0.02}
    rng = np.random.default_rng(seed)
    rows = []
    for sequence in range(SEQUENCES):
        shared = 30 + sequence + lfilter([1.0], [1.0, -0.9], rng.normal(size=FRAMES) * 0.4)
        for method, shift in methods.items():
            psnr = shared + shift + lfilter([1.0], [1.0, -0.6], rng.normal(size=FRAMES) * 0.3)
            lpips = 0.6 - 0.01 * psnr
            lpips[rng.random(FRAMES) < 0.05] = np.nan
            rows.append(pd.DataFrame({"dataset": "synthetic", "sequence": f"s{sequence}", "method": method,
                                      "frame": np.arange(FRAMES), "protocol": "canonical", "psnr": psnr,
                                      "lpips": lpips, "time_s": 0.1}))
    return pd.concat(rows, ignore_index=True)


def test_pairs_mirror_and_find_the_real_difference():
    table = per_frame_table()
    found = compare_table(table, DIRECTIONS, resamples=300)
    assert len(found) == 6  # 3 pairs x 2 columns
    psnr = found[found.metric == "psnr"].set_index(["method_a", "method_b"])
    assert psnr.loc[("ours", "insta"), "significant"] and psnr.loc[("ours", "insta"), "better"] == "ours"
    assert psnr.loc[("ours", "insta"), "ci_low"] < 1.0 < psnr.loc[("ours", "insta"), "ci_high"]
    assert not psnr.loc[("insta", "rig"), "significant"] and psnr.loc[("insta", "rig"), "better"] == ""
    # lower LPIPS is better: the direction given decides which method is named
    lpips = found[found.metric == "lpips"].set_index(["method_a", "method_b"])
    assert lpips.loc[("ours", "insta"), "difference"] < 0 and lpips.loc[("ours", "insta"), "better"] == "ours"

    mirrored = compare_table(table, {"psnr": True}, baseline="insta", resamples=300).set_index("method_a")
    forward = psnr.loc[("ours", "insta")]
    backward = compare_table(table, {"psnr": True}, baseline="ours", resamples=300)
    assert list(mirrored.index) == ["ours", "rig"] and set(mirrored["method_b"]) == {"insta"}
    assert mirrored.loc["ours", "difference"] == pytest.approx(forward["difference"])
    back = backward.set_index("method_a").loc["insta"]
    assert back["difference"] == pytest.approx(-forward["difference"])
    assert (back["ci_low"], back["ci_high"]) == pytest.approx((-forward["ci_high"], -forward["ci_low"]))
    assert back["p_bootstrap"] == pytest.approx(forward["p_bootstrap"])


def test_paired_frames_wilcoxon_and_holm_follow_their_references():
    from statsmodels.stats.multitest import multipletests

    table = per_frame_table(seed=1)
    table = table.drop(table[(table.method == "rig") & (table.frame < 5)].index)  # rig lacks 5 frames per sequence
    found = compare_table(table, {"lpips": False}, resamples=300)
    a = table[table.method == "ours"].set_index(["sequence", "frame"])["lpips"]
    b = table[table.method == "rig"].set_index(["sequence", "frame"])["lpips"]
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    row = found.set_index(["method_a", "method_b"]).loc[("ours", "rig")]
    assert row["n_frames"] == len(both)
    assert row["difference"] == pytest.approx((both["a"] - both["b"]).mean(), rel=1e-12)
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((both["a"].mean(), both["b"].mean()), rel=1e-12)
    sequence_means = both.groupby(level="sequence").mean()
    assert row["p_wilcoxon"] == pytest.approx(wilcoxon(sequence_means["a"], sequence_means["b"]).pvalue, rel=1e-12)
    np.testing.assert_allclose(found["p_holm"], multipletests(found["p_bootstrap"], method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(found["p_wilcoxon_holm"], multipletests(found["p_wilcoxon"], method="holm")[1],
                               rtol=1e-12)


def test_the_registry_names_the_compared_columns_and_their_directions():
    from metrics import registry

    columns = ["psnr", "time_s", "lpips", "flow_mag_gt", "flow_gap", "not_a_metric"]
    assert registry.compared_columns(columns) == {"psnr": True, "lpips": False, "flow_gap": False}


def test_a_table_without_dataset_or_sequence_is_one_sequence():
    table = per_frame_table()
    table = table[table.sequence == "s0"].drop(columns=["dataset", "sequence"])
    found = compare_table(table, {"psnr": True}, resamples=200)
    assert (found["n_sequences"] == 1).all() and (found["n_frames"] == FRAMES).all()
    assert found["p_wilcoxon"].isna().all()


def test_compare_command_writes_csv_and_markdown(tmp_path, capsys):
    per_frame_table().to_csv(tmp_path / "per_frame.csv", index=False)
    status = main(["compare", "--run", str(tmp_path), "--metric", "psnr", "--baseline", "insta", "--resamples", "200",
                   "--seed", "3"])
    assert status == 0
    written = pd.read_csv(tmp_path / "compare.csv")
    assert list(written["method_a"]) == ["ours", "rig"] and set(written["metric"]) == {"psnr"}
    markdown = (tmp_path / "compare.md").read_text()
    assert "## psnr ↑" in markdown and "| ours − insta |" in markdown and "**ours**" in markdown
    assert "200 resamples, seed 3" in markdown and markdown in capsys.readouterr().out
    again = compare_table(per_frame_table(), {"psnr": True}, baseline="insta", resamples=200, seed=3)
    np.testing.assert_allclose(written["ci_low"], again["ci_low"], rtol=1e-9)


@pytest.mark.parametrize(("arguments", "message"), [
    (["--run", "{tmp}/absent"], "absent: no such run folder"),
    (["--run", "{tmp}", "--metric", "ssim"], "--metric ssim: not a metric column of this run (it has: psnr, lpips)"),
    (["--run", "{tmp}", "--metric", "nonsense"], "--metric nonsense: not a metric column"),
    (["--run", "{tmp}", "--baseline", "nobody"], "--baseline nobody: no such method in the run (it has: ours, insta, rig)"),
    (["--run", "{tmp}", "--alpha", "1.5"], "--alpha 1.5: must be between 0 and 1"),
])
def test_compare_errors_are_one_line(tmp_path, capsys, arguments, message):
    per_frame_table().to_csv(tmp_path / "per_frame.csv", index=False)
    status = main(["compare", *[a.format(tmp=tmp_path) for a in arguments], "--resamples", "50"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "compare.csv").exists()


def test_compare_needs_a_result_table(tmp_path, capsys):
    assert main(["compare", "--run", str(tmp_path)]) == 2
    assert "no per_frame.csv" in capsys.readouterr().err
