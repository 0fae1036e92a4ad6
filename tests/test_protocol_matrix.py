"""The protocol matrix: each protocol's ranking of the methods and the Kendall tau between rankings.

References: ``scipy.stats.rankdata`` (``min`` ranks) and ``scipy.stats.kendalltau`` on the means,
and, end to end, the single-protocol runs of the same outputs on the synthetic set: the matrix of a
run under several protocols must reproduce each of them exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, rankdata

from benchmark.cli import main
from benchmark.results.rankings import protocol_rankings, ranking_agreement
from benchmark.results.schema import read_methods
from reports import matrix
from reports.publish import publish

PROTOCOLS = ("canonical", "imavatar", "pointavatar")


def _summary(means: dict[str, dict[str, float]], metric: str = "psnr") -> pd.DataFrame:
    """A summary of one dataset: {protocol: {method: mean}}."""
    return pd.DataFrame([{"dataset": "d", "method": method, "metric": metric, "protocol": protocol, "mean": value}
                         for protocol, values in means.items() for method, value in values.items()])


def test_ranks_and_tau_equal_scipy():
    means = {"canonical": {"ours": 31.0, "insta": 30.2, "rig": 29.5, "nha": 30.2, "sad": 25.0},
             "insta": {"ours": 30.0, "insta": 30.4, "rig": 28.0, "nha": 29.9, "sad": np.nan}}
    for metric, higher in (("psnr", True), ("lpips", False)):
        rankings = protocol_rankings(_summary(means, metric), {metric: higher})
        for protocol, values in means.items():
            rows = rankings[rankings.protocol == protocol].set_index("method")
            defined = {m: v for m, v in values.items() if np.isfinite(v)}
            expected = rankdata([-v if higher else v for v in defined.values()], method="min")
            assert [rows.loc[m, "rank"] for m in defined] == list(expected)
            assert all(pd.isna(rows.loc[m, "rank"]) for m in values if m not in defined)
        agreement = ranking_agreement(rankings).iloc[0]
        common = ["ours", "insta", "rig", "nha"]
        reference = kendalltau([means["canonical"][m] for m in common], [means["insta"][m] for m in common])
        assert (agreement["tau"], agreement["p_value"]) == pytest.approx((reference.statistic, reference.pvalue), rel=1e-12)
        assert agreement["n_methods"] == 4 and not agreement["same_best"]
        assert (agreement["best_a"], agreement["best_b"]) == (("ours", "insta") if higher else ("sad", "rig"))


def test_sanity_rows_and_the_runtime_stay_out_of_the_matrix():
    summary = pd.concat([_summary({"canonical": {"ours": 31.0, "insta": 30.0, "blur": 40.0},
                                   "insta": {"ours": 30.0, "insta": 31.0, "blur": 41.0}}),
                         _summary({"canonical": {"ours": 1.0, "insta": 2.0}, "insta": {"ours": 1.0, "insta": 2.0}},
                                  "time_s")], ignore_index=True)
    rankings, agreement = matrix.matrix(summary, roles={"blur": "sanity"})
    assert set(rankings["method"]) == {"ours", "insta"} and set(rankings["metric"]) == {"psnr"}
    assert agreement["tau"].tolist() == [-1.0]
    text = matrix.markdown(rankings, agreement)
    assert "| psnr ↑ | canonical, insta | ours (canonical); insta (insta) | -1.00 (canonical vs insta) |" in text
    assert "| ours | 31.00 (1) | 30.00 (2) |" in text and "| canonical | -1.00 |" in text


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same four methods on the synthetic set, evaluated under three protocols in one run and in
    one run per protocol. Two sequences of 8 frames (the test split: 2 frames each): the imavatar and
    pointavatar protocols score at 512 x 512, so each frame costs; the equalities are exact whatever
    the count, and the rankings still disagree on this set (checked below)."""
    from benchmark import runner
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig
    from benchmark.demo import make_data
    from benchmark.results.bootstrap import BootstrapSettings

    root = tmp_path_factory.mktemp("matrix")
    data = make_data(root / "data", sequences=2, frames=8, size=64, progress=False)
    methods = (MethodConfig(name="proxy", adapter="insta", settings={"experiment": "stage1_proxy"}),
               *(MethodConfig(name=name, adapter="degraded", settings={"degradation": name})
                 for name in ("oversmooth", "flicker", "colour_drift")))
    config = RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(data), kind="synthetic"),), methods=methods,
                       metrics=("l2", "psnr", "ssim"), out=str(root / "all"), protocol=PROTOCOLS, batch_size=8,
                       bootstrap=BootstrapSettings(resamples=200, seed=1))

    def run(**changes):
        return runner.run_config(config.replace(**changes), progress=False, plots=False,
                                 report=changes.get("protocol") != "imavatar", log=lambda m: None, publish=publish)

    return {"all": run(), **{p: run(protocol=p, out=str(root / p)) for p in PROTOCOLS}}


@pytest.mark.slow
def test_the_matrix_reproduces_each_single_protocol_run(runs):
    rankings, agreement = matrix.matrix(runs["all"].summary)
    assert list(dict.fromkeys(rankings["protocol"])) == list(PROTOCOLS)
    for protocol in PROTOCOLS:
        alone = runs[protocol].summary
        for column in ("l2", "psnr", "ssim"):
            found = rankings[(rankings.protocol == protocol) & (rankings.metric == column)].set_index("method")
            single = alone[alone.metric == column].set_index("method")
            assert list(found.index) == list(single.index)
            for key in ("mean", "ci_low", "ci_high"):
                assert (found[key] == single[key]).all(), (protocol, column, key)  # exactly
            sign = 1 if column in ("psnr", "ssim") else -1
            assert list(found["rank"]) == list(rankdata(-sign * single["mean"].to_numpy(), method="min"))
    for row in agreement.itertuples():
        a = runs[row.protocol_a].summary.query("metric == @row.metric").set_index("method")["mean"]
        b = runs[row.protocol_b].summary.query("metric == @row.metric").set_index("method")["mean"]
        assert row.tau == pytest.approx(kendalltau(a, b[a.index]).statistic, rel=1e-12)
    # on this set the protocols disagree: the face-hull protocol ranks the over-smoothed frames above the proxy
    psnr = rankings[rankings.metric == "psnr"].set_index(["protocol", "method"])["rank"]
    assert psnr[("canonical", "proxy")] < psnr[("canonical", "oversmooth")]
    assert psnr[("imavatar", "proxy")] > psnr[("imavatar", "oversmooth")]


@pytest.mark.slow
def test_tables_protocols_and_the_report_show_the_matrix(runs, capsys):
    folder = Path(runs["all"].out)
    assert main(["tables", "--run", str(folder), "--protocols"]) == 0
    assert "# Protocol matrix" in capsys.readouterr().out
    written = pd.read_csv(folder / "protocols.csv")
    roles = read_methods(folder)  # the degradations are sanity rows: left out of the rankings
    assert set(roles.values()) == {"method", "sanity"} and set(written["method"]) == {"proxy"}
    rankings, agreement = matrix.matrix(runs["all"].summary, roles)
    np.testing.assert_array_equal(written["mean"], rankings["mean"])
    assert written["rank"].tolist() == rankings["rank"].tolist()
    assert pd.read_csv(folder / "protocols_tau.csv")["tau"].tolist() == pytest.approx(agreement["tau"].tolist(),
                                                                                       nan_ok=True)
    report = (folder / "report.html").read_text()
    assert "<h2>Protocol matrix</h2>" in report and "Kendall tau between rankings" in report
    assert "95% intervals, 200 resamples, seed 1" in report  # the run's bootstrap settings, stated
    assert " ± " in report and "†: not significantly worse than the best" in report
    assert "<h2>Protocol matrix</h2>" not in (Path(runs["canonical"].out) / "report.html").read_text()
