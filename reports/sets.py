"""Set-level values (FID, KID) in the tables, from the rows of ``set_metrics.csv`` (plain values).

Two Markdown files, written by :func:`reports.publish.publish` when the run has set metrics:

- ``table1_sets.md``: Table 1 beside its set values: one row per (dataset, method, protocol) with
  the per-frame headline columns of Table 1 (means over frames, as in ``table1.md``) and one column
  per set metric and protocol, each value with its 95 % block-bootstrap interval and the frames it
  was computed on (generated / real), so a set value is never read without its N;
- ``set_metrics.md``: every set value, per sequence and per dataset (``all``).

A set value's cell is ``value [low, high] (n=frames/gt_frames)``; ``missing`` when it could not be
computed (the reason is printed once by the command and is in ``set_metrics.csv``). FID is biased
upward at small N (Chong & Forsyth 2020), which the note under each table says.
"""

from __future__ import annotations

import math

import pandas as pd

from metrics import registry
from reports.tables import markdown_grid

ALL_SEQUENCES = "*"  # the sequence of a dataset-scope row (benchmark.engine.sets)
NOTE = ("Set values (FID, KID): value [2.5%, 97.5% block-bootstrap interval] (n = generated / real frames). "
        "FID is biased upward at small n; compare values computed on the same numbers of frames.")
FVD_NOTE = ("FVD: n counts 16-frame clips (consecutive, non-overlapping, per sequence), not frames; like FID it is "
            "biased upward at small n.")


def set_cell(row: pd.Series | dict) -> str:
    """``value [low, high] (n=frames/gt_frames)`` at the metric's paper precision, or ``missing``."""
    missing = row["missing"]
    if isinstance(missing, str) and missing:
        return "missing"
    fmt = registry.get(row["metric"]).paper_format
    text = format(float(row["value"]), fmt)
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if int(row["resamples"]) > 0 and math.isfinite(low) and math.isfinite(high):
        text += f" [{format(low, fmt)}, {format(high, fmt)}]"
    unit = " clips" if row["metric"] == "fvd" else ""  # FVD counts 16-frame clips, not frames
    return text + f" (n={int(row['frames'])}/{int(row['gt_frames'])}{unit})"


def _header(metric: str, protocol: str) -> str:
    spec = registry.get(metric)
    return f"{spec.name.upper()} {spec.arrow} ({protocol})"


def set_table(rows: pd.DataFrame) -> str:
    """Every set value: one row per (dataset, sequence or all, method), one column per (metric, protocol)."""
    if rows.empty:
        return ""
    keys = list(dict.fromkeys(zip(rows["metric"], rows["protocol"])))
    lines = []
    for (dataset, sequence, method), group in rows.groupby(["dataset", "sequence", "method"], sort=False):
        cells = [dataset, "all" if sequence == ALL_SEQUENCES else sequence, method]
        for metric, protocol in keys:
            match = group[(group["metric"] == metric) & (group["protocol"] == protocol)]
            cells.append(set_cell(match.iloc[0]) if len(match) else "")
        lines.append(cells)
    return markdown_grid(["dataset", "sequence", "method", *(_header(m, p) for m, p in keys)], lines)


def table1_with_sets(summary: pd.DataFrame, rows: pd.DataFrame) -> str:
    """Table 1's per-frame headline means (``summary``, long form) beside the dataset-scope set values of
    ``rows``: one row per (dataset, method, protocol); set columns per metric, the protocol in the row."""
    from reports.tables import TABLE1, format_value

    dataset_rows = rows[rows["scope"] == "dataset"]
    if dataset_rows.empty:
        return ""
    frame_columns = [(c, label) for c, label in TABLE1.columns
                     if len(summary) and c in set(summary["metric"])]
    set_metrics = list(dict.fromkeys(dataset_rows["metric"]))
    protocol_of = summary["protocol"] if "protocol" in summary else pd.Series([""] * len(summary))
    keys = list(dict.fromkeys([*zip(summary.get("dataset", []), summary.get("method", []), protocol_of),
                               *zip(dataset_rows["dataset"], dataset_rows["method"], dataset_rows["protocol"])]))
    lines = []
    for dataset, method, protocol in keys:
        cells = [str(dataset), str(method), str(protocol)]
        for column, _ in frame_columns:
            match = summary[(summary["dataset"] == dataset) & (summary["method"] == method)
                            & (protocol_of == protocol) & (summary["metric"] == column)]
            cells.append(format_value(column, float(match["mean"].iloc[0])) if len(match) else "–")
        for metric in set_metrics:
            match = dataset_rows[(dataset_rows["dataset"] == dataset) & (dataset_rows["method"] == method)
                                 & (dataset_rows["protocol"] == protocol) & (dataset_rows["metric"] == metric)]
            cells.append(set_cell(match.iloc[0]) if len(match) else "–")
        lines.append(cells)
    header = ["dataset", "method", "protocol", *(label for _, label in frame_columns),
              *(f"{registry.get(m).name.upper()} {registry.get(m).arrow}" for m in set_metrics)]
    return markdown_grid(header, lines)


def set_files(rows: pd.DataFrame, summary: pd.DataFrame) -> dict[str, str]:
    """{file name: Markdown} of the set values (see the module docstring); empty without rows."""
    if rows is None or rows.empty:
        return {}
    note = NOTE + (" " + FVD_NOTE if "fvd" in set(rows["metric"]) else "")
    files = {"set_metrics.md": set_table(rows) + "\n" + note + "\n"}
    beside = table1_with_sets(summary, rows)
    if beside:
        files["table1_sets.md"] = ("Table 1 with the set-level metrics (FID, KID: one value per method and "
                                   "dataset)\n\n" + beside + "\n" + note + "\n")
    return files
