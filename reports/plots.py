"""Plots of a run (matplotlib, Agg): temporal curves, per-metric bars, per-frame traces, timing.

One look across the figures of a run:
- a method keeps one colour in every plot, assigned once from the run's method list
  (:func:`method_colors`: methods from matplotlib's tab10, or tab20 beyond 10; sanity checks in
  greys, drawn dashed or hatched, after the methods);
- methods are named as in the tables (never by file slug), units and directions come from the metric
  registry, and every PNG carries its caption, a sentence saying what is drawn, as its
  ``Description`` text chunk (:func:`caption_of`), which the report prints under it;
- sanity checks (role ``sanity``: the ground truth degraded on purpose) are grouped after the methods.

The plots:
- Temporal curves (the paper's Fig. 7): per sequence, small multiples, one panel per method, each
  with the method's mean optical-flow magnitude between adjacent frames against the ground truth's
  (columns ``flow_mag_pred`` and ``flow_mag_gt``), on shared axes; readable with any number of methods.
- Bars: per metric column, the mean over frames per method and dataset, with the confidence interval
  of the mean as the error bar (``ci_low`` to ``ci_high`` of the summary: the block bootstrap of
  :mod:`benchmark.results.summary`; the standard deviation over frames says how much frames vary,
  not how sure the mean is). The runtime gets no error bar: it is one measurement per rendered
  sequence, not an estimate from frames. A reference column named ``<column>_gt`` (the ground
  truth's own value, e.g. ``warp_error_gt``, the floor the flow's accuracy sets) is drawn as a dashed
  black line over each dataset's bars.
- Traces: per metric column and sequence, the per-frame value of each method; frames where a face
  metric is undefined (no face found) are marked with a cross at the bottom of the plot, and the
  ground truth's own value (``<column>_gt``) is drawn dashed black; with ``rolling = w`` each
  method's rolling mean over ``w`` frames is shaded with its interval
  (:func:`benchmark.results.statistics.rolling_interval`).
- Timing (the one timing plotter; ``cabench time`` draws with it too): milliseconds per frame
  against the number of denoising steps, one panel per scheduler and one line per stage, from the
  CSV of ``cabench time`` (one row per (scheduler, steps, repeat), ``*_ms`` columns); the median
  over repeats is drawn, the spread as a band between min and max; stages that did not run are left
  out. LCM timed with its LCM-LoRA switched off (column ``lora`` = off) is a panel of its own,
  "lcm (LoRA off)" (:func:`sweep_label`).
- Sweep (``cabench time --quality``): PSNR against milliseconds per frame (log scale), one line per
  sampler and LoRA setting, each point labelled with its step count, the PSNR's interval as the
  error bar (:func:`sweep_plot`).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results.schema import is_sanity
from benchmark.results.sweep import sweep_label
from metrics import registry
from reports.tables import direction, scores

FLOW_PRED, FLOW_GT = "flow_mag_pred", "flow_mag_gt"
KEYS = ("dataset", "sequence", "method", "frame", "protocol")
Colors = Mapping[str, tuple]


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


def _save(fig, path: Path, caption: str = "") -> Path:
    """The figure as a PNG whose ``Description`` text chunk holds ``caption``."""
    import io

    from benchmark.results.files import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Description": caption} if caption else None)
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def caption_of(path: str | Path) -> str:
    """The caption a plot was saved with (its PNG ``Description`` chunk), or ""."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return str(getattr(image, "text", {}).get("Description", ""))
    except OSError:
        return ""


SANITY_HATCHES = ("//", "\\\\", "xx", "..", "++", "--", "oo")
SANITY_MARKERS = ("x", "+", "^", "s", "d", "v", "*")


def distinct_colors(names: Iterable[str]) -> dict[str, tuple]:
    """A colour per distinct name, in the order given: matplotlib's tab10 (tab20 beyond 10 names)."""
    names = list(dict.fromkeys(str(n) for n in names))
    palette = _pyplot().get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def method_colors(methods: Sequence[str], roles: Mapping[str, str] | None = None) -> dict[str, tuple]:
    """One colour per method, from the run's method list in table order (so every plot of a run
    agrees): methods from tab10 (tab20 beyond 10); sanity checks in greys (told apart by hatch and
    marker, :func:`_sanity_index`), so that no check shares a method's colour."""
    plt = _pyplot()
    names = _ordered_methods(methods, roles)
    competitors = [n for n in names if not is_sanity(n, roles)]
    checks = [n for n in names if is_sanity(n, roles)]
    greys = plt.get_cmap("Greys")
    colors = distinct_colors(competitors)
    colors.update({name: greys(0.35 + 0.45 * i / max(1, len(checks) - 1)) for i, name in enumerate(checks)})
    return colors


def _ordered_methods(methods, roles: Mapping[str, str] | None) -> list[str]:
    """The methods in table order (the paper's order), sanity checks after the methods."""
    from reports.tables import method_order

    return method_order([str(m) for m in methods], roles)


def _sanity_index(method: str, methods: Sequence[str], roles: Mapping[str, str] | None) -> int:
    checks = [m for m in methods if is_sanity(m, roles)]
    return checks.index(method) if method in checks else 0


def _style(method: str, methods: Sequence[str], roles: Mapping[str, str] | None) -> dict:
    """Line style: solid for methods; dashed, thinner and with a marker of its own for a sanity check."""
    if not is_sanity(method, roles):
        return {"linestyle": "-", "linewidth": 1.2, "marker": ".", "markersize": 3}
    marker = SANITY_MARKERS[_sanity_index(method, methods, roles) % len(SANITY_MARKERS)]
    return {"linestyle": "--", "linewidth": 0.9, "marker": marker, "markersize": 4}


def _frame_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _display(method: str, roles: Mapping[str, str] | None) -> str:
    return f"{method} (sanity check)" if is_sanity(method, roles) else method


def _legend(ax, **options) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, **options)


def _under(prefix: str) -> str:
    return f" under the {prefix} protocol" if prefix else ""


def _sanity_sentence(methods: Sequence[str], roles: Mapping[str, str] | None) -> str:
    if any(is_sanity(m, roles) for m in methods):
        return (" Sanity checks (the ground truth degraded on purpose, to show that the metric notices; not methods) "
                "come after the methods, dashed or hatched.")
    return ""


def _value_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in KEYS and c not in (FLOW_PRED, FLOW_GT)
            and pd.api.types.is_numeric_dtype(frame[c])]


def ground_truth_column(column: str) -> str | None:
    """The reference column holding the ground truth's own value of ``column`` (``warp_error_gt`` for
    ``warp_error``), when the metric registers one."""
    spec = registry.column_spec(column)
    candidate = f"{column}_gt"
    return candidate if spec is not None and candidate in spec.reference_columns else None


def temporal_curves(per_frame: pd.DataFrame, out: Path, prefix: str = "", roles: Mapping[str, str] | None = None,
                    colors: Colors | None = None) -> list[Path]:
    """One PNG per (dataset, sequence): small multiples, one panel per method, its flow magnitude per
    frame against the ground truth's, on shared axes."""
    if FLOW_PRED not in per_frame or FLOW_GT not in per_frame:
        return []
    plt = _pyplot()
    colors = colors or method_colors(per_frame["method"], roles)
    files = []
    for (dataset, sequence), group in per_frame.groupby(["dataset", "sequence"], sort=False):
        methods = _ordered_methods(group["method"], roles)
        columns = min(4, len(methods))
        rows = math.ceil(len(methods) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.3 * rows + 0.6), sharex=True, sharey=True,
                                 squeeze=False)
        truth = group[group["method"] == methods[0]].sort_values("frame")
        for ax, method in zip(axes.flat, methods):
            values = group[group["method"] == method].sort_values("frame")
            ax.plot(truth["frame"], truth[FLOW_GT], color="black", linewidth=1.6, linestyle="--", label="ground truth")
            ax.plot(values["frame"], values[FLOW_PRED], color=colors.get(method, "grey"), linewidth=1.3, label="method")
            ax.set_title(textwrap.fill(_display(method, roles), 34), fontsize=8)
            ax.grid(alpha=0.3)
            _frame_ticks(ax)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(methods):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("frame", fontsize=8)
        for ax in axes[:, 0]:
            ax.set_ylabel("flow magnitude (px)", fontsize=8)
        fig.suptitle(f"Motion between adjacent frames: {dataset} / {sequence} (dashed black: ground truth)", fontsize=10)
        fig.tight_layout()
        caption = (f"Temporal consistency on {dataset} / {sequence}{_under(prefix)}: for each method (one panel each, "
                   "in its colour), the mean optical-flow magnitude between each frame and the previous one, against "
                   "the ground truth's (dashed black, the same in every panel), as in the paper's Fig. 7. A method "
                   "whose curve follows the ground truth's moves as the subject does; spikes are flicker or jitter."
                   + _sanity_sentence(methods, roles))
        files.append(_save(fig, out / _name(prefix, "temporal", dataset, sequence), caption))
    return files


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


def metric_bars(summary: pd.DataFrame, out: Path, columns: Sequence[str] | None = None, prefix: str = "",
                roles: Mapping[str, str] | None = None, colors: Colors | None = None, level: float = 0.95) -> list[Path]:
    """One PNG per metric column: mean per method (grouped by dataset; sanity checks after a gap,
    hatched), error bar = the interval of the mean (none for the runtime), the ground truth's own
    value dashed (``level``: the summary's interval level, for the caption)."""
    plt = _pyplot()
    files = []
    columns = columns or [c for c in dict.fromkeys(summary["metric"]) if c not in (FLOW_PRED, FLOW_GT)]
    colors = colors or method_colors(summary["method"], roles)
    for column in columns:
        rows = summary[(summary["metric"] == column) & summary["mean"].notna() & np.isfinite(summary["mean"])]
        if rows.empty:
            continue
        spec = registry.column_spec(column)
        runtime = spec is not None and spec.kind == "runtime"
        datasets = list(dict.fromkeys(rows["dataset"]))
        methods = _ordered_methods(rows["method"], roles)
        gap = 0.6 if any(is_sanity(m, roles) for m in methods) and not all(is_sanity(m, roles) for m in methods) else 0.0
        slots = len(methods) + gap
        width = 0.8 / max(slots, 1)
        offsets = {}
        bars = None
        for j, method in enumerate(methods):
            offsets[method] = (j + (gap if is_sanity(method, roles) else 0.0)) * width
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(datasets) * max(len(methods), 2) * 0.5), 3.6))
        for method in methods:
            values = [rows[(rows["dataset"] == d) & (rows["method"] == method)] for d in datasets]
            means = [float(v["mean"].iloc[0]) if len(v) else np.nan for v in values]
            bars = _error_bars(values, column)
            sanity = is_sanity(method, roles)
            hatch = SANITY_HATCHES[_sanity_index(method, methods, roles) % len(SANITY_HATCHES)] if sanity else None
            ax.bar(np.arange(len(datasets)) + offsets[method], means, width, yerr=bars, capsize=3,
                   label=_display(method, roles), color=colors.get(method, "grey"), hatch=hatch,
                   edgecolor="white" if sanity else None)
        floor = ground_truth_column(column)
        floor_rows = summary[summary["metric"] == floor] if floor else summary.iloc[:0]
        for i, dataset in enumerate(datasets):
            value = floor_rows[floor_rows["dataset"] == dataset]["mean"]
            if len(value) and np.isfinite(value).any():
                ax.hlines(float(value[np.isfinite(value)].mean()), i - width / 2, i + (slots - 0.5) * width, colors="black",
                          linestyles="--", linewidth=1.4, label="ground truth (floor)" if i == 0 else None, zorder=5)
        ax.set_xticks(np.arange(len(datasets)) + width * (slots - 1) / 2, datasets)
        ax.set_xlabel("dataset")
        ax.set_ylabel(_label(column))
        spread = ("no error bar (one time per rendered sequence)" if runtime else
                  "bar = confidence interval of the mean" if bars is not None else "no interval")
        ax.set_title(f"{column}: mean over frames; {spread}", fontsize=10)
        _legend(ax)
        ax.grid(axis="y", alpha=0.3)
        caption = (f"Mean of {_label(column)} over the evaluated frames of each method, per dataset{_under(prefix)}; "
                   + ("a runtime has no error bar (the adapter measures one time per rendered sequence)."
                      if runtime else f"the error bar is the {100 * level:g}% confidence interval of the mean "
                      "(block bootstrap over sequences and frames)." if bars is not None else "no interval was computed.")
                   + (" The dashed black line is the ground truth's own value, the floor the flow's accuracy sets."
                      if len(floor_rows) else "") + _sanity_sentence(methods, roles))
        files.append(_save(fig, out / _name(prefix, "bars", column), caption))
    return files


def frame_traces(per_frame: pd.DataFrame, out: Path, columns: Sequence[str] | None = None, prefix: str = "",
                 roles: Mapping[str, str] | None = None, colors: Colors | None = None, rolling: int | None = None,
                 level: float = 0.95) -> list[Path]:
    """One PNG per (metric column, dataset, sequence): the per-frame value of each method, frames
    where a face metric is undefined marked, the ground truth's own value dashed; with ``rolling``
    (frames), each method's rolling mean shaded with its ``level`` interval."""
    from benchmark.results.statistics import rolling_interval

    plt = _pyplot()
    files = []
    columns = columns or [c for c in _value_columns(per_frame) if c != "time_s"]
    colors = colors or method_colors(per_frame["method"], roles)
    for (dataset, sequence), group in per_frame.groupby(["dataset", "sequence"], sort=False):
        for column in columns:
            if column not in group or not np.isfinite(group[column].to_numpy(dtype=float)).any():
                continue
            spec = registry.column_spec(column)
            face = spec is not None and spec.kind == "face"
            methods = _ordered_methods(group["method"], roles)
            fig, ax = plt.subplots(figsize=(7, 3.4))
            undefined = False
            for method in methods:
                rows = group[group["method"] == method].sort_values("frame")
                color = colors.get(method, "grey")
                ax.plot(rows["frame"], rows[column], label=_display(method, roles), color=color,
                        **_style(method, methods, roles))
                if rolling:
                    _, low, high = rolling_interval(rows[column].to_numpy(dtype=float), rolling, level)
                    if spec is not None:  # a band never leaves the values the metric can take (e.g. below 0)
                        low, high = np.clip(low, *spec.value_range), np.clip(high, *spec.value_range)
                    ax.fill_between(rows["frame"], low, high, color=color, alpha=0.2, linewidth=0)
                if face:
                    gaps = rows[rows[column].isna()]["frame"]
                    if len(gaps):
                        undefined = True
                        ax.plot(gaps, np.full(len(gaps), 0.02), linestyle="none", marker="x", markersize=5, color=color,
                                transform=ax.get_xaxis_transform(), clip_on=False)
            floor = ground_truth_column(column)
            if floor and floor in group:
                truth = group[group["method"] == methods[0]].sort_values("frame")
                ax.plot(truth["frame"], truth[floor], color="black", linestyle="--", linewidth=1.4,
                        label="ground truth (floor)")
            if undefined:
                ax.plot([], [], linestyle="none", marker="x", color="grey", label="no face: undefined")
            ax.set_xlabel("frame")
            _frame_ticks(ax)
            ax.set_ylabel(_label(column))
            shading = f"; shaded: {100 * level:g}% interval of the {rolling}-frame rolling mean" if rolling else ""
            ax.set_title(f"{column} per frame: {dataset} / {sequence}{shading}", fontsize=10)
            _legend(ax)
            ax.grid(alpha=0.3)
            caption = (f"Per-frame {_label(column)} on {dataset} / {sequence}{_under(prefix)}, one line per method."
                       + (f" The shaded band around each line is the {100 * level:g}% interval of its {rolling}-frame "
                          "rolling mean." if rolling else "")
                       + (" A cross at the bottom, in the method's colour, marks a frame where no face was found, so "
                          "the metric is undefined there (left out of the mean)." if undefined else "")
                       + (" The dashed black line is the ground truth's own value, the floor the flow's accuracy sets."
                          if floor and floor in group else "") + _sanity_sentence(methods, roles))
            files.append(_save(fig, out / _name(prefix, "trace", column, dataset, sequence), caption))
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
              roles: Mapping[str, str] | None = None, colors: Colors | None = None, rolling: int | None = None,
              level: float = 0.95) -> list[Path]:
    """The plots of a run: temporal curves, bars of every metric's headline column, traces of the
    metrics the registry marks ``trace`` (one PNG per sequence each; ``rolling``: shade a rolling
    interval, see :func:`frame_traces`). ``prefix`` starts every file name (the protocol, when a run
    has several); ``roles``: {method: role}; ``colors``: the run's :func:`method_colors` (default: from
    this table's methods)."""
    bars = headline_columns(list(dict.fromkeys(summary["metric"]))) if len(summary) else []
    traces = trace_columns(list(per_frame.columns))
    colors = colors or method_colors(per_frame["method"], roles)
    return [*temporal_curves(per_frame, out, prefix, roles, colors), *metric_bars(summary, out, bars, prefix, roles, colors, level),
            *frame_traces(per_frame, out, traces, prefix, roles, colors, rolling, level)]


def draw_run(per_frame: pd.DataFrame, summary: pd.DataFrame, out: Path, roles: Mapping[str, str] | None = None,
             methods: Sequence[str] | None = None, rolling: int | None = None, level: float = 0.95) -> list[Path]:
    """Every plot of a run, per protocol (file names prefixed with the protocol when there are several),
    one colour per method across all of them (:func:`method_colors` of ``methods``, the run's method
    list, default the result table's); ``rolling``, ``level``: see :func:`frame_traces`."""
    protocols = list(dict.fromkeys(per_frame["protocol"]))
    colors = method_colors(list(methods) if methods is not None else list(per_frame["method"]), roles)
    files = []
    for protocol in protocols:
        rows = per_frame[per_frame["protocol"] == protocol]
        if len(rows):
            files += run_plots(rows, summary[summary["protocol"] == protocol], out,
                               prefix=protocol if len(protocols) > 1 else "", roles=roles, colors=colors,
                               rolling=rolling, level=level)
    return files


TIMING_CSV = "times.csv"
# Stage columns of a `cabench time` CSV drawn against steps, in this order (milliseconds per frame).
TIMING_STAGES = ("constants_ms", "tsd_ms", "tsdm_ms", "conditions_ms", "fcsd_ms", "vae_decode_ms", "refiner_ms",
                 "total_ms", "stock_total_ms")
# Columns of CSVs written before the columns carried their unit (the values were milliseconds then too).
_UNSUFFIXED = {"tsd": "tsd_ms", "tsdm": "tsdm_ms", "conditions": "conditions_ms", "unet_controlnet_step": "fcsd_step_ms",
               "vae_decode": "vae_decode_ms", "refiner": "refiner_ms", "total": "total_ms",
               "ours_controlnet": "ours_fcsd_ms", "stock_controlnet": "stock_fcsd_ms"}


def timing_csv(path: str | Path) -> Path:
    """The CSV of ``cabench time``: ``path`` itself, or ``times.csv`` (or the one ``*.csv``) in a folder."""
    from metrics.errors import InputError

    path = Path(path)
    if not path.is_dir():
        return path
    if (path / TIMING_CSV).is_file():
        return path / TIMING_CSV
    candidates = sorted(path.glob("*.csv"))
    if len(candidates) != 1:
        raise InputError(f"{path}: expected {TIMING_CSV} (the CSV of cabench time) in the folder")
    return candidates[0]


def read_timing(path: str | Path) -> pd.DataFrame:
    """A ``cabench time`` CSV (a file or its folder): one row per (scheduler, steps, repeat), times in
    milliseconds per frame in ``*_ms`` columns (older unsuffixed columns are renamed: they held ms)."""
    from benchmark.results.files import read_csv
    from metrics.errors import InputError

    path = timing_csv(path)
    frame = read_csv(path, "timing CSV")
    if "total_ms" not in frame.columns:
        frame = frame.rename(columns={k: v for k, v in _UNSUFFIXED.items() if k in frame.columns})
    needed = {"scheduler", "steps", "total_ms"}
    if not needed <= set(frame.columns):
        raise InputError(f"{path}: a timing CSV needs columns {', '.join(sorted(needed))} (has {', '.join(frame.columns)})")
    return frame


def timing_stages(frame: pd.DataFrame) -> list[str]:
    """The stage columns to draw: those of :data:`TIMING_STAGES` present with a non-zero value (a
    stage that did not run, such as the refiner without one, is left out)."""
    return [c for c in TIMING_STAGES if c in frame and pd.to_numeric(frame[c], errors="coerce").fillna(0).ne(0).any()]


def _sweep_labels(frame: pd.DataFrame) -> pd.Series:
    """:func:`sweep_label` of each row (a CSV without a ``lora`` column: the sampler's name)."""
    lora = frame["lora"] if "lora" in frame else pd.Series("on", index=frame.index)
    return pd.Series([sweep_label(s, v) for s, v in zip(frame["scheduler"], lora)], index=frame.index)


def timing_curves(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """{(scheduler label, stage column): DataFrame(steps, median, low, high)} over the repeats of each
    step count; the label is :func:`sweep_label`'s (LCM with the LoRA off apart)."""
    curves = {}
    labels = _sweep_labels(frame)
    for scheduler in dict.fromkeys(labels):
        grouped = frame[labels == scheduler].groupby("steps")
        for stage in timing_stages(frame):
            curve = pd.DataFrame({"median": grouped[stage].median(), "low": grouped[stage].min(),
                                  "high": grouped[stage].max()})
            curves[(str(scheduler), stage)] = curve.reset_index()
    return curves


def _stage_label(column: str) -> str:
    names = {"constants_ms": "per-sequence constants", "tsd_ms": "TSD", "tsdm_ms": "TSDM (stage 2)",
             "conditions_ms": "condition encoders", "fcsd_ms": "FCSD steps", "vae_decode_ms": "VAE decode",
             "refiner_ms": "refiner", "total_ms": "total", "stock_total_ms": "stock diffusers pipelines, total"}
    return names.get(column, column.removesuffix("_ms"))


def _step_ticks(ax, steps) -> None:
    """Ticks at the measured step counts (integers), on a log axis when they span a decade or more."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    values = sorted({int(s) for s in steps})
    if values and values[-1] >= 10 * max(values[0], 1):
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def timing_plot(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Milliseconds per frame against steps: one panel per scheduler, one line per stage (median of the
    repeats, min-max band), one legend for the figure, beside the panels."""
    plt = _pyplot()
    curves = timing_curves(frame)
    schedulers = list(dict.fromkeys(s for s, _ in curves))
    stages = list(dict.fromkeys(stage for _, stage in curves))
    colors = distinct_colors(stages)
    fig, axes = plt.subplots(1, len(schedulers), figsize=(5.2 * len(schedulers), 3.8), squeeze=False)
    for ax, scheduler in zip(axes[0], schedulers):
        for stage in stages:
            curve = curves[(scheduler, stage)]
            style = {"linewidth": 2.2} if stage == "total_ms" else {"linewidth": 1.2}
            if stage.startswith("stock_"):
                style["linestyle"] = "--"
            ax.plot(curve["steps"], curve["median"], marker="o", markersize=3, label=_stage_label(stage),
                    color="black" if stage == "total_ms" else colors[stage], **style)
            ax.fill_between(curve["steps"], curve["low"], curve["high"], alpha=0.15,
                            color="black" if stage == "total_ms" else colors[stage])
        _step_ticks(ax, frame["steps"])
        ax.set_yscale("log")
        ax.set_xlabel("denoising steps")
        ax.set_ylabel("milliseconds per frame (log scale)")
        ax.set_title(f"{scheduler}: time per frame by stage")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.suptitle("Median of the repeats; the band spans their minimum and maximum.", fontsize=9, y=0.01, va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return [_save(fig, out / "timing_steps.png")]


def quality_steps_plot(frame: pd.DataFrame, quality: pd.DataFrame, column: str, out: Path) -> list[Path]:
    """Time and a quality metric against steps: ``quality`` has columns scheduler, steps and ``column``;
    LCM's LoRA-off rows of either are left out (``cabench time --quality`` draws those in :func:`sweep_plot`)."""
    frame = frame[_sweep_labels(frame) == frame["scheduler"].astype(str)]
    quality = quality[_sweep_labels(quality) == quality["scheduler"].astype(str)]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    other = ax.twinx()
    colors = distinct_colors(frame["scheduler"])
    for scheduler, rows in frame.groupby("scheduler", sort=False):
        median = rows.groupby("steps")["total_ms"].median()
        ax.plot(median.index, median.to_numpy(), marker="o", color=colors[str(scheduler)],
                label=f"{scheduler}: ms per frame")
        q = quality[quality["scheduler"] == scheduler].groupby("steps")[column].mean()
        if len(q):
            other.plot(q.index, q.to_numpy(), marker="s", linestyle="--", color=colors[str(scheduler)],
                       label=f"{scheduler}: {column}")
    _step_ticks(ax, frame["steps"])
    ax.set_xlabel("denoising steps")
    ax.set_ylabel("milliseconds per frame (median)")
    other.set_ylabel(_label(column))
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    fig.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95),
               frameon=False)
    ax.set_title(f"Time per frame (solid) and {column} (dashed) against steps")
    fig.tight_layout()
    return [_save(fig, out / _name("steps", column))]


SWEEP_PNG = "sweep.png"


def _plain_log_ticks(ax, values: np.ndarray) -> None:
    """Plain numbers (``120``, not ``1.2 × 10²``) on a log x axis; the minor ticks labelled too when the
    values span less than a decade (there may be no major tick among them)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    finite = values[np.isfinite(values) & (values > 0)]
    narrow = len(finite) and finite.max() < 10 * finite.min()
    ax.xaxis.set_minor_formatter(plain if narrow else NullFormatter())


def sweep_plot(table: pd.DataFrame, out: Path, column: str = "psnr") -> list[Path]:
    """``column`` (y) against the median milliseconds per frame (x, log scale) of the step sweep: one line
    per ``label`` (sampler and LoRA setting, :func:`sweep_label`) through its step counts, each point
    annotated with its number of steps, the error bar the interval ``<column>_low`` to ``<column>_high``
    (the block bootstrap over frames of ``cabench time --quality``). Rows without a time are left out."""
    plt = _pyplot()
    rows = table[pd.to_numeric(table["total_ms"], errors="coerce").notna()]
    labels = list(dict.fromkeys(rows["label"]))
    colors = distinct_colors(labels)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label in labels:
        line = rows[rows["label"] == label].sort_values("steps")
        x, y = line["total_ms"].to_numpy(float), line[column].to_numpy(float)
        error = np.abs(np.vstack([y - line[f"{column}_low"].to_numpy(float), line[f"{column}_high"].to_numpy(float) - y]))
        style = {"linestyle": "--"} if label.endswith("(LoRA off)") else {}
        ax.errorbar(x, y, yerr=error, marker="o", markersize=4, capsize=3, linewidth=1.4, color=colors[label],
                    label=label, **style)
        for xi, yi, steps in zip(x, y, line["steps"]):
            ax.annotate(str(int(steps)), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=colors[label])
    ax.set_xscale("log")
    _plain_log_ticks(ax, rows["total_ms"].to_numpy(float))
    ax.set_xlabel("milliseconds per frame (median of the repeats, log scale)")
    ax.set_ylabel(_label(column))
    ax.set_title(f"{column.upper()} against time per frame; points labelled with their step count", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    fig.tight_layout()
    caption = (f"Mean {column} over the held-out frames against the median milliseconds per frame, one line per "
               "sampler and LCM-LoRA setting through its step counts (the numbers at the points); error bars: "
               "the 95% block-bootstrap interval of the mean over frames.")
    return [_save(fig, out / SWEEP_PNG, caption)]
