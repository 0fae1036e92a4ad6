"""The plots' uncertainty: bar error bars are the summary's intervals (none for the runtime); traces
can shade each method's rolling interval.

The drawn figures are inspected (matplotlib artists) before they are saved: the error bars must
span exactly ``ci_low`` to ``ci_high`` of the summary, and the shaded band must be
``rolling_interval`` of the plotted series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from benchmark.cli import main
from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.statistics import rolling_interval
from benchmark.results.summary import summarize
from reports import plots
from tests.test_compare import per_frame_table


@pytest.fixture
def figures(monkeypatch) -> list:
    """The figures the plots draw, kept open instead of only being saved."""
    drawn = []
    save = plots._save

    def keep(fig, path, caption=""):
        drawn.append(fig)
        fig.savefig = lambda *a, **k: None  # the PNG itself is not what is tested here
        return save(fig, path, caption)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def test_bar_error_bars_are_the_intervals_and_the_runtime_has_none(tmp_path, figures):
    table = per_frame_table().query("sequence in ['s0', 's1']")
    summary = summarize(table, bootstrap=BootstrapSettings(resamples=200))
    plots.metric_bars(summary, tmp_path, ["psnr", "time_s"])
    psnr, runtime = (fig.axes[0] for fig in figures)
    expected = summary[summary.metric == "psnr"].set_index("method")
    bars = [c for c in psnr.containers if hasattr(c, "errorbar")]
    assert [c.get_label() for c in bars] == ["ours", "insta", "rig"]
    for container in bars:
        (segment,) = container.errorbar.lines[2][0].get_segments()
        low, high = sorted(segment[:, 1])
        row = expected.loc[container.get_label()]
        assert (low, high) == pytest.approx((row.ci_low, row.ci_high), rel=1e-12)
    assert "confidence interval" in psnr.get_title()
    assert all(c.errorbar is None for c in runtime.containers if hasattr(c, "errorbar"))
    assert "interval" not in runtime.get_title()


def test_traces_shade_the_rolling_interval_when_asked(tmp_path, figures):
    table = per_frame_table().query("sequence == 's0'")
    plots.frame_traces(table, tmp_path, ["psnr"])
    plain = figures.pop()
    assert not [c for c in plain.axes[0].collections if isinstance(c, PolyCollection)]
    plots.frame_traces(table, tmp_path, ["psnr"], rolling=15, level=0.9)
    axes = figures.pop().axes[0]
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3 and "90% interval of the 15-frame rolling mean" in axes.get_title()
    series = table[table.method == "ours"].sort_values("frame")["psnr"].to_numpy()
    _, low, high = rolling_interval(series, 15, 0.9)
    outline = bands[0].get_paths()[0].vertices[:, 1]
    assert outline.min() == pytest.approx(low.min()) and outline.max() == pytest.approx(high.max())


def test_cabench_plots_rolling(tmp_path, capsys):
    per_frame_table().query("sequence == 's0'").to_csv(tmp_path / "per_frame.csv", index=False)
    assert main(["plots", "--run", str(tmp_path), "--rolling", "21"]) == 0
    assert (tmp_path / "plots" / "trace_psnr_synthetic_s0.png").is_file()
    with pytest.raises(SystemExit) as stop:
        main(["plots", "--run", str(tmp_path), "--rolling", "1"])
    assert stop.value.code == 2 and "--rolling: needs at least 2 frames, got 1" in capsys.readouterr().err


def test_rolling_bands_of_non_negative_metrics_stay_at_or_above_zero(tmp_path, figures):
    """An L2 near zero with noisy frames: the rolling interval's lower end dips below zero, the band does not."""
    frames = np.arange(60)
    l2 = np.where(frames % 7 == 0, 0.02, 0.0005)
    table = pd.DataFrame({"dataset": "d", "sequence": "s", "method": "m", "frame": frames, "protocol": "canonical",
                          "l2": l2})
    _, low, _ = rolling_interval(l2, 15, 0.95)
    assert np.nanmin(low) < 0  # the case this guards against
    plots.frame_traces(table, tmp_path, ["l2"], rolling=15, level=0.95)
    (band,) = [c for c in figures.pop().axes[0].collections if isinstance(c, PolyCollection)]
    assert band.get_paths()[0].vertices[:, 1].min() >= 0
