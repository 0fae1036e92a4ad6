"""Plots of a run (matplotlib, Agg): temporal curves, per-metric bars, per-frame traces, timing.

Every plot is a PNG with labelled axes (units from the metric registry) and a legend.
- Temporal curves (the paper's Fig. 7): per sequence, the mean optical-flow magnitude between
  adjacent frames of each method against the ground truth's (columns ``flow_mag_pred`` and
  ``flow_mag_gt``, written by the temporal metrics).
- Bars: per metric column, the mean over frames per method and dataset, with the confidence interval
  of the mean as the error bar (``ci_low`` to ``ci_high`` of the summary: the block bootstrap of
  :mod:`benchmark.results.summary`; the standard deviation over frames says how much frames vary,
  not how sure the mean is). The runtime gets no error bar: it is one measurement per rendered
  sequence, not an estimate from frames.
- Traces: per metric column and sequence, the per-frame value of each method; with ``rolling = w``
  each method's rolling mean over ``w`` frames is shaded with its interval
  (:func:`benchmark.results.statistics.rolling_interval`).
- Timing: per-frame time against the number of denoising steps, one line per (scheduler, stage),
  from the CSV of ``cabench time`` (one row per (scheduler, steps, repeat), a column per stage and
  ``total``); the median over repeats is drawn, the spread as a band between min and max.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metrics import registry
from reports.tables import direction, scores

FLOW_PRED, FLOW_GT = "flow_mag_pred", "flow_mag_gt"
KEYS = ("dataset", "sequence", "method", "frame", "protocol")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(column: str) -> str:
    higher, unit = direction(column)
    arrow = (" ↑" if higher else " ↓") if scores(column) else ""
    return f"{column} ({unit}){arrow}" if unit else f"{column}{arrow}"


def _name(*parts: str) -> str:
    from benchmark.results.names import safe_name

    return "_".join(safe_name(str(p)) for p in parts if p != "") + ".png"


def _save(fig, path: Path) -> Path:
    import io

    from benchmark.results.files import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def temporal_curves(per_frame: pd.DataFrame, out: Path, prefix: str = "") -> list[Path]:
    """One PNG per (dataset, sequence): flow magnitude per frame, each method against the ground truth."""
    if FLOW_PRED not in per_frame or FLOW_GT not in per_frame:
        return []
    plt = _pyplot()
    files = []
    for (dataset, sequence), group in per_frame.groupby(["dataset", "sequence"], sort=False):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        colors = _colors(per_frame["method"])
        for method, rows in group.groupby("method", sort=False):
            rows = rows.sort_values("frame")
            ax.plot(rows["frame"], rows[FLOW_PRED], linewidth=1.2, label=str(method), color=colors[str(method)])
        first = group[group["method"] == group["method"].iloc[0]].sort_values("frame")
        ax.plot(first["frame"], first[FLOW_GT], color="black", linewidth=2.0, linestyle="--", zorder=10,
                label="ground truth")
        ax.set_xlabel("frame")
        ax.set_ylabel("mean flow magnitude to the previous frame (px)")
        ax.set_title(f"Temporal consistency: {dataset} / {sequence}")
        _legend(ax)
        ax.grid(alpha=0.3)
        files.append(_save(fig, out / _name(prefix, "temporal", dataset, sequence)))
    return files


def _colors(methods) -> dict[str, tuple]:
    """A distinct colour per method: matplotlib's 10-colour cycle, tab20 beyond 10 methods."""
    plt = _pyplot()
    names = list(dict.fromkeys(str(m) for m in methods))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _legend(ax) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _value_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in KEYS and c not in (FLOW_PRED, FLOW_GT)
            and pd.api.types.is_numeric_dtype(frame[c])]


def _error_bars(rows: Sequence[pd.DataFrame], column: str) -> np.ndarray | None:
    """(2, n) distances from each mean down to ``ci_low`` and up to ``ci_high`` (0 where undefined);
    None for the runtime column or a summary without intervals."""
    from benchmark.results.schema import TIME_COLUMN

    if column == TIME_COLUMN or not all({"ci_low", "ci_high"} <= set(r.columns) for r in rows):
        return None
    bars = np.zeros((2, len(rows)))
    for i, found in enumerate(rows):
        if len(found):
            mean, low, high = (float(found[c].iloc[0]) for c in ("mean", "ci_low", "ci_high"))
            if np.isfinite(low) and np.isfinite(high):
                bars[:, i] = (mean - low, high - mean)
    return bars


def metric_bars(summary: pd.DataFrame, out: Path, columns: Sequence[str] | None = None, prefix: str = "") -> list[Path]:
    """One PNG per metric column: mean per method (grouped by dataset), error bar = the interval of the
    mean (none for the runtime)."""
    plt = _pyplot()
    files = []
    columns = columns or [c for c in dict.fromkeys(summary["metric"]) if c not in (FLOW_PRED, FLOW_GT)]
    for column in columns:
        rows = summary[(summary["metric"] == column) & summary["mean"].notna() & np.isfinite(summary["mean"])]
        if rows.empty:
            continue
        datasets = list(dict.fromkeys(rows["dataset"]))
        methods = list(dict.fromkeys(rows["method"]))
        width = 0.8 / max(len(methods), 1)
        colors = _colors(methods)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(datasets) * max(len(methods), 2) * 0.5), 3.6))
        bars = None
        for j, method in enumerate(methods):
            values = [rows[(rows["dataset"] == d) & (rows["method"] == method)] for d in datasets]
            means = [float(v["mean"].iloc[0]) if len(v) else np.nan for v in values]
            bars = _error_bars(values, column)
            ax.bar(np.arange(len(datasets)) + j * width, means, width, yerr=bars, capsize=3, label=str(method),
                   color=colors[str(method)])
        ax.set_xticks(np.arange(len(datasets)) + width * (len(methods) - 1) / 2, datasets)
        ax.set_xlabel("dataset")
        ax.set_ylabel(_label(column))
        ax.set_title(f"{column}: mean over frames" + (", bar = confidence interval of the mean" if bars is not None else ""))
        _legend(ax)
        ax.grid(axis="y", alpha=0.3)
        files.append(_save(fig, out / _name(prefix, "bars", column)))
    return files


def frame_traces(per_frame: pd.DataFrame, out: Path, columns: Sequence[str] | None = None, prefix: str = "",
                 rolling: int | None = None, level: float = 0.95) -> list[Path]:
    """One PNG per (metric column, dataset, sequence): the per-frame value of each method; with
    ``rolling`` (frames), each method's rolling mean shaded with its ``level`` interval."""
    from benchmark.results.statistics import rolling_interval

    plt = _pyplot()
    files = []
    columns = columns or [c for c in _value_columns(per_frame) if c != "time_s"]
    for (dataset, sequence), group in per_frame.groupby(["dataset", "sequence"], sort=False):
        for column in columns:
            if column not in group or not np.isfinite(group[column].to_numpy(dtype=float)).any():
                continue
            fig, ax = plt.subplots(figsize=(7, 3.4))
            colors = _colors(per_frame["method"])
            for method, rows in group.groupby("method", sort=False):
                rows = rows.sort_values("frame")
                ax.plot(rows["frame"], rows[column], marker=".", markersize=3, linewidth=1, label=str(method),
                        color=colors[str(method)])
                if rolling:
                    _, low, high = rolling_interval(rows[column].to_numpy(dtype=float), rolling, level)
                    ax.fill_between(rows["frame"], low, high, color=colors[str(method)], alpha=0.2, linewidth=0)
            ax.set_xlabel("frame")
            ax.set_ylabel(_label(column))
            shading = f"; shaded: {100 * level:g}% interval of the {rolling}-frame rolling mean" if rolling else ""
            ax.set_title(f"{column} per frame: {dataset} / {sequence}{shading}")
            _legend(ax)
            ax.grid(alpha=0.3)
            files.append(_save(fig, out / _name(prefix, "trace", column, dataset, sequence)))
    return files


def headline_columns(columns: Sequence[str]) -> list[str]:
    """The columns among ``columns`` that are a metric's headline (``MetricSpec.headline``; runtime included)."""
    keep = []
    for column in columns:
        spec = registry.column_spec(column)
        if spec is not None and spec.headline == column:
            keep.append(column)
    return keep


def trace_columns(columns: Sequence[str]) -> list[str]:
    """The columns among ``columns`` drawn frame by frame: headlines of metrics with ``MetricSpec.trace``."""
    return [c for c in headline_columns(columns) if registry.column_spec(c).trace]


def run_plots(per_frame: pd.DataFrame, summary: pd.DataFrame, out: Path, prefix: str = "",
              rolling: int | None = None, level: float = 0.95) -> list[Path]:
    """The plots of a run: temporal curves, bars of every metric's headline column, traces of the
    metrics the registry marks ``trace`` (one PNG per sequence each; ``rolling``: shade a rolling
    interval, see :func:`frame_traces`). ``prefix`` starts every file name (the protocol, when a run
    has several)."""
    bars = headline_columns(list(dict.fromkeys(summary["metric"]))) if len(summary) else []
    traces = trace_columns(list(per_frame.columns))
    return [*temporal_curves(per_frame, out, prefix), *metric_bars(summary, out, bars, prefix),
            *frame_traces(per_frame, out, traces, prefix, rolling, level)]


def read_timing(path: str | Path) -> pd.DataFrame:
    """The CSV of ``cabench time`` (a file, or a folder holding ``timing.csv`` / one ``*.csv``)."""
    from benchmark.results.files import read_csv
    from metrics.errors import InputError

    path = Path(path)
    if path.is_dir():
        candidates = [path / "timing.csv"] if (path / "timing.csv").exists() else sorted(path.glob("*.csv"))
        if len(candidates) != 1:
            raise InputError(f"{path}: expected timing.csv (the CSV of cabench time) in the folder")
        path = candidates[0]
    frame = read_csv(path, "timing CSV")
    needed = {"scheduler", "steps", "total"}
    if not needed <= set(frame.columns):
        raise InputError(f"{path}: a timing CSV needs columns {', '.join(sorted(needed))} (has {', '.join(frame.columns)})")
    frame.attrs["path"] = str(path)
    return frame


def timing_stages(frame: pd.DataFrame) -> list[str]:
    """Stage columns of a timing CSV: numeric columns other than the keys, ``total`` last."""
    skip = {"scheduler", "steps", "repeat", "total", "batch", "dtype", "device", "config"}
    stages = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    return [*stages, "total"]


def timing_curves(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """{(scheduler, stage): DataFrame(steps, median, low, high)} over the repeats of each step count."""
    curves = {}
    for scheduler in dict.fromkeys(frame["scheduler"]):
        grouped = frame[frame["scheduler"] == scheduler].groupby("steps")
        for stage in timing_stages(frame):
            curve = pd.DataFrame({"median": grouped[stage].median(), "low": grouped[stage].min(),
                                  "high": grouped[stage].max()})
            curves[(str(scheduler), stage)] = curve.reset_index()
    return curves


def timing_plot(frame: pd.DataFrame, out: Path, unit: str = "s") -> list[Path]:
    """Time per frame against steps: one panel per scheduler, one line per stage (median, min-max band)."""
    plt = _pyplot()
    curves = timing_curves(frame)
    schedulers = list(dict.fromkeys(s for s, _ in curves))
    fig, axes = plt.subplots(1, len(schedulers), figsize=(5.5 * len(schedulers), 3.8), squeeze=False)
    for ax, scheduler in zip(axes[0], schedulers):
        for (name, stage), curve in curves.items():
            if name != scheduler:
                continue
            style = {"color": "black", "linewidth": 2.2} if stage == "total" else {"linewidth": 1.2}
            ax.plot(curve["steps"], curve["median"], marker="o", markersize=3, label=stage, **style)
            ax.fill_between(curve["steps"], curve["low"], curve["high"], alpha=0.15)
        ax.set_xlabel("denoising steps")
        ax.set_ylabel(f"time per frame ({unit})")
        ax.set_title(f"{scheduler}: time per frame by stage (median of repeats)")
        _legend(ax)
        ax.grid(alpha=0.3)
    return [_save(fig, out / "timing_steps.png")]


def quality_steps_plot(frame: pd.DataFrame, quality: pd.DataFrame, column: str, out: Path) -> list[Path]:
    """Time and a quality metric against steps: ``quality`` has columns scheduler, steps and ``column``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    other = ax.twinx()
    for scheduler, rows in frame.groupby("scheduler", sort=False):
        median = rows.groupby("steps")["total"].median()
        ax.plot(median.index, median.to_numpy(), marker="o", label=f"{scheduler} time")
        q = quality[quality["scheduler"] == scheduler].groupby("steps")[column].mean()
        if len(q):
            other.plot(q.index, q.to_numpy(), marker="s", linestyle="--", label=f"{scheduler} {column}")
    ax.set_xlabel("denoising steps")
    ax.set_ylabel("time per frame (s)")
    other.set_ylabel(_label(column))
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)
    ax.set_title(f"time and {column} against steps")
    return [_save(fig, out / _name("steps", column))]
