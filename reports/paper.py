"""The ConsistentAvatar paper's reported numbers (Tables 1 and 2), as package data.

The CSVs beside this module are transcriptions of the paper's tables (see shared/paper/README):
``paper_table1.csv`` (dataset, method, l2, psnr, ssim, lpips, time_s) and ``paper_table2.csv``
(metric PE/EE, method, value). They are facts to compare against: tables show them as
"reported" beside what the harness measured, never in place of a measurement.

The paper's metric names map to the harness's per-frame columns (:data:`PAPER_COLUMNS`); its
"Ours" row is the harness's ConsistentAvatar (:data:`METHOD_ALIASES`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd

# Rows in the order the paper prints them (Table 1, then the Table 2 rows Table 1 lacks).
PAPER_METHOD_ORDER: tuple[str, ...] = (
    "NHA", "NeRFace", "IMAvatar", "MAAvatar", "INSTA", "DiffusionRig", "PointAvatar", "SadTalker",
    "w/o stage2 (Baseline)", "w/o aligned TSD", "w/o normal", "w/o emotion text", "w/o LCM", "Ours",
)
PAPER_DATASETS: tuple[str, ...] = ("INSTA", "PointAvatar", "NeRFace")
# Table 2's column names in the paper -> the harness's per-frame columns (DECA pose / expression error).
PAPER_COLUMNS: dict[str, str] = {"PE": "deca_pe", "EE": "deca_ee"}
# The harness's row names of the reference pipeline and its ablations -> the paper's rows.
METHOD_ALIASES: dict[str, str] = {
    "ConsistentAvatar": "Ours",
    "ConsistentAvatar w/o stage2": "w/o stage2 (Baseline)",
    "ConsistentAvatar w/o LCM": "w/o LCM",
    "ConsistentAvatar w/o normal": "w/o normal",
    "ConsistentAvatar w/o emotion text": "w/o emotion text",
    "ConsistentAvatar w/o aligned TSD": "w/o aligned TSD",
}


# Rows that take a paper row's place in the order only (their numbers are not the paper row's):
# the stage-1 proxy is rendered as INSTA renders, so it sits where INSTA does.
ORDER_ALIASES: dict[str, str] = {"INSTA (stage-1 proxy)": "INSTA"}


def order_name(method: str) -> str:
    """The paper row whose place ``method`` takes in a table's order."""
    return METHOD_ALIASES.get(method) or ORDER_ALIASES.get(method, method)


# Paper rows that are the same trained model as a harness row under another table's name: Table 2's
# "w/o aligned TSD" is Table 1's "w/o stage2 (Baseline)" (reference.ablations), so a run renders it once.
SAME_MODEL: dict[str, tuple[str, ...]] = {"ConsistentAvatar w/o stage2": ("w/o aligned TSD",)}


def paper_name(method: str) -> str:
    """The paper's name of a harness method (ConsistentAvatar is the paper's "Ours")."""
    return METHOD_ALIASES.get(method, method)


def paper_names(method: str) -> tuple[str, ...]:
    """Every paper row a harness method stands for: its paper name, and the same model's other names."""
    return (paper_name(method), *SAME_MODEL.get(method, ()))


def _read(name: str) -> pd.DataFrame:
    with resources.files("reports").joinpath(name).open("r", encoding="utf-8") as stream:
        return pd.read_csv(stream)


@cache
def _reported() -> pd.DataFrame:
    table1 = _read("paper_table1.csv").melt(id_vars=["dataset", "method"], var_name="metric", value_name="value")
    table1 = table1.dropna(subset=["value"])  # PointAvatar has no time in the paper
    table2 = _read("paper_table2.csv")
    table2 = table2.assign(metric=table2["metric"].map(PAPER_COLUMNS), dataset="")
    frame = pd.concat([table1, table2[["dataset", "method", "metric", "value"]]], ignore_index=True)
    return frame.assign(table=["table1"] * len(table1) + ["table2"] * len(table2))


def reported() -> pd.DataFrame:
    """Long form: table, dataset ("" where the paper names none), method, metric column, value."""
    return _reported().copy()


def reported_value(metric: str, method: str, dataset: str | None = None) -> float | None:
    """The paper's value for (metric column, method[, dataset]), or None where it reports none.

    Table 2 names no dataset, so its values are matched on the method alone.
    """
    frame = _reported()
    rows = frame[(frame["metric"] == metric) & frame["method"].isin(paper_names(method))]
    if rows.empty:
        return None
    with_dataset = rows[rows["dataset"] == (dataset or "")]
    if not with_dataset.empty:
        return float(with_dataset["value"].iloc[0])
    undated = rows[rows["dataset"] == ""]
    return float(undated["value"].iloc[0]) if not undated.empty else None
