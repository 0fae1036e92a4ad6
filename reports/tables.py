"""The paper's Table 1 and Table 2 from a run's summary: Markdown, LaTeX (booktabs) and CSV.

Layout (the paper's): rows grouped by dataset (the paper's datasets first, in its order), methods
in the paper's order (others after, in the order they were run), an arrow per column for the
direction (from the metric registry), the best measured value of each dataset group in bold, and
each number printed at the paper's precision so reported and measured numbers read alike.

With ``paper=True`` every metric gets three columns, measured | reported | difference (measured -
reported), the paper's groups appear even where nothing was measured, and each row names the
protocol its measured numbers were computed with. A metric that could not run is printed as
``missing`` with its reason under the table, never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from metrics import registry
from reports.paper import PAPER_DATASETS, PAPER_METHOD_ORDER, order_name, paper_name, reported

# Columns that are not registry metrics (runtime is measured by the runner) or whose metric may be absent.
FALLBACK_DIRECTIONS: dict[str, tuple[bool, str]] = {"time_s": (False, "s"), "deca_pe": (False, ""), "deca_ee": (False, "")}
# The paper's precision per column (Table 2 mixes 4 and 5 significant digits, hence "g").
PAPER_FORMATS: dict[str, str] = {"l2": ".4f", "psnr": ".2f", "ssim": ".2f", "lpips": ".3f", "time_s": ".2f",
                                 "deca_pe": ".4g", "deca_ee": ".5g"}


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (per-frame column, the paper's label)


TABLE1 = TableSpec("table1", "Table 1: image quality and time per frame",
                   (("l2", "L2"), ("psnr", "PSNR"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("time_s", "Time")))
TABLE2 = TableSpec("table2", "Table 2: DECA pose error (PE) and expression error (EE)",
                   (("deca_pe", "PE"), ("deca_ee", "EE")))


def extra_table(summary: pd.DataFrame) -> TableSpec | None:
    """A table of the headline columns of every other metric in the run (temporal, face, ...), or None."""
    shown = {c for spec in (TABLE1, TABLE2) for c, _ in spec.columns}
    columns = []
    for column in dict.fromkeys(summary["metric"]) if len(summary) else []:
        spec = registry.column_spec(column)
        if column not in shown and spec is not None and spec.output_columns()[0] == column:
            columns.append((column, column))
    if not columns:
        return None
    return TableSpec("metrics", "Other metrics: temporal consistency, face and landmark measures", tuple(columns))


def direction(column: str) -> tuple[bool, str]:
    """(higher_is_better, unit) of a per-frame column: the registry's, else the fallback, else (False, "")."""
    spec = registry.column_spec(column)
    if spec is not None:
        return spec.higher_is_better, spec.unit
    return FALLBACK_DIRECTIONS.get(column, (False, ""))


def scores(column: str) -> bool:
    """Whether ``column`` scores the method (a direction applies), not a reference such as the
    ground truth's own curve (the registry's ``reference_columns``)."""
    spec = registry.column_spec(column)
    return spec.scores(column) if spec is not None and hasattr(spec, "scores") else True


def format_value(column: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, PAPER_FORMATS.get(column, ".4g"))


def format_difference(column: str, value: float | None) -> str:
    text = format_value(column, value)
    return text if text in ("–",) or text.startswith("-") else f"+{text}"


@dataclass
class Row:
    dataset: str
    method: str
    protocol: str = ""
    measured: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)


def _ordered(values: Sequence[str], preferred: Sequence[str], key=lambda v: v) -> list[str]:
    rank = {name: i for i, name in enumerate(preferred)}
    appearance = {v: i for i, v in enumerate(values)}
    return sorted(dict.fromkeys(values), key=lambda v: (rank.get(key(v), len(rank)), appearance[v]))


def build_rows(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None,
               paper: bool = False) -> list[Row]:
    """The table's rows, grouped and ordered as in the paper.

    summary: long form with dataset, method, metric, protocol, mean (from :func:`benchmark.evaluation.summarize`).
    missing: rows (dataset, method, metric, reason) for metrics that could not run.
    """
    columns = [c for c, _ in spec.columns]
    rows: dict[tuple[str, str], Row] = {}
    summary = summary if "dataset" in summary else summary.assign(dataset="")
    for record in summary[summary["metric"].isin(columns)].itertuples(index=False):
        row = rows.setdefault((record.dataset, record.method), Row(record.dataset, record.method))
        if not (isinstance(record.mean, float) and math.isnan(record.mean)):
            row.measured[record.metric] = float(record.mean)
        if record.metric != "time_s" and getattr(record, "protocol", ""):
            row.protocol = row.protocol or str(record.protocol)
    if missing is not None and len(missing):
        for record in missing[missing["metric"].isin(_metric_names(columns))].itertuples(index=False):
            row = rows.setdefault((record.dataset, record.method), Row(record.dataset, record.method))
            for column in _columns_of(record.metric, columns):
                if column not in row.measured:
                    row.missing[column] = str(record.reason)
    if paper:
        table = reported()
        table = table[table["metric"].isin(columns)]
        for record in table.itertuples(index=False):
            datasets = [record.dataset] if record.dataset else sorted({d for d, _ in rows} or {""})
            for dataset in datasets:
                matches = [k for k in rows if k[0] == dataset and paper_name(k[1]) == record.method]
                if not matches and record.dataset:
                    rows[(dataset, record.method)] = Row(dataset, record.method)
                    matches = [(dataset, record.method)]
                for key in matches:
                    rows[key].reported[record.metric] = float(record.value)
    datasets = _ordered([d for d, _ in rows], PAPER_DATASETS)
    ordered = []
    for dataset in datasets:
        methods = _ordered([m for d, m in rows if d == dataset], PAPER_METHOD_ORDER, key=order_name)
        ordered += [rows[(dataset, m)] for m in methods]
    return ordered


def _metric_names(columns: Sequence[str]) -> set[str]:
    names = set(columns)
    for column in columns:
        spec = registry.column_spec(column)
        if spec is not None:
            names.add(spec.name)
    return names


def _columns_of(metric: str, columns: Sequence[str]) -> list[str]:
    if metric in columns:
        return [metric]
    try:
        outputs = registry.get(metric).output_columns()
    except Exception:  # an unknown metric name in a stored run: nothing to attach it to
        return []
    return [c for c in columns if c in outputs]


def best_values(rows: Sequence[Row], columns: Sequence[str]) -> dict[tuple[str, str], float]:
    """(dataset, column) -> the best measured value in that dataset group."""
    best: dict[tuple[str, str], float] = {}
    for column in columns:
        higher, _ = direction(column)
        for row in rows:
            value = row.measured.get(column)
            if value is None or math.isnan(value):
                continue
            key = (row.dataset, column)
            if key not in best or (value > best[key] if higher else value < best[key]):
                best[key] = value
    return best


def _header(column: str, label: str) -> tuple[str, str]:
    higher, unit = direction(column)
    return (f"{label} ({unit})" if unit else label), ("↑" if higher else "↓")


def _cells(spec: TableSpec, row: Row, best: dict, paper: bool, bold, escape=lambda t: t) -> list[str]:
    """The row's cells as text; ``escape`` is applied to each cell before ``bold`` marks the best."""
    cells = []
    for column, _ in spec.columns:
        value = row.measured.get(column)
        if value is not None:
            text = format_value(column, value)
            # Bold what prints as the best (ties at the paper's precision are all bold).
            if (row.dataset, column) in best and text == format_value(column, best[(row.dataset, column)]):
                text = bold(escape(text))
            else:
                text = escape(text)
        elif column in row.missing:
            text = "missing"
        else:
            text = escape("–")
        if paper:
            reported_value = row.reported.get(column)
            difference = None if value is None or reported_value is None else value - reported_value
            cells += [text, escape(format_value(column, reported_value)), escape(format_difference(column, difference))]
        else:
            cells.append(text)
    return cells


def _notes(rows: Sequence[Row], spec: TableSpec) -> list[str]:
    labels = dict(spec.columns)
    reasons: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for column, reason in row.missing.items():
            reasons.setdefault((labels[column], reason), []).append(f"{row.dataset}/{row.method}" if row.dataset else row.method)
    return [f"{label}: missing ({reason}) for {', '.join(where)}" for (label, reason), where in reasons.items()]


def _protocols(rows: Sequence[Row]) -> str:
    return ", ".join(sorted({r.protocol for r in rows if r.protocol})) or "none"


def _prepared(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None, paper: bool):
    """(rows, best values, column headers) of a flat rendering (Markdown, HTML)."""
    rows = build_rows(spec, summary, missing, paper)
    best = best_values(rows, [c for c, _ in spec.columns])
    headers = ["Dataset", "Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        headers += [f"{name} {arrow}", f"{name} reported", "Δ"] if paper else [f"{name} {arrow}"]
    return rows, best, [*headers, "Protocol"]


def markdown(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    rows, best, headers = _prepared(spec, summary, missing, paper)
    lines = [f"**{spec.title}**" + (" (measured beside the paper's reported numbers)" if paper else ""), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    previous = None
    for row in rows:
        dataset = row.dataset if row.dataset != previous else ""
        previous = row.dataset
        cells = [dataset, row.method, *_cells(spec, row, best, paper, lambda t: f"**{t}**"), row.protocol or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Measured with protocol(s): {_protocols(rows)}. Best measured value per dataset in bold."]
    lines += [f"- {note}" for note in _notes(rows, spec)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for char, replacement in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                              ("–", "--"), ("Δ", r"$\Delta$")):
        text = text.replace(char, replacement)
    return text


def latex(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    rows = build_rows(spec, summary, missing, paper)
    best = best_values(rows, [c for c, _ in spec.columns])
    arrows = {"↑": r"$\uparrow$", "↓": r"$\downarrow$"}
    width = len(spec.columns) * (3 if paper else 1)
    top = ["Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        heading = f"{_tex(name)} {arrows[arrow]}"
        top.append(rf"\multicolumn{{3}}{{c}}{{{heading}}}" if paper else heading)
    lines = [r"\begin{tabular}{l" + "c" * width + "l}", r"\toprule", " & ".join(top) + r" & Protocol \\"]
    if paper:
        rules = " ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(len(spec.columns)))
        lines += [rules, " & " + " & ".join(["measured & reported & $\\Delta$"] * len(spec.columns)) + r" & \\"]
    previous = None
    for row in rows:
        if row.dataset != previous:
            lines += [r"\midrule", rf"\multicolumn{{{width + 2}}}{{l}}{{\textit{{{_tex(row.dataset or 'all')}}}}} \\"]
            previous = row.dataset
        cells = _cells(spec, row, best, paper, lambda t: rf"\textbf{{{t}}}", escape=_tex)
        lines.append(" & ".join([_tex(row.method), *cells, _tex(row.protocol or "–")]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% {spec.title}; measured with protocol(s): {_protocols(rows)}"]
    lines += [f"% {_tex(note)}" for note in _notes(rows, spec)]
    return "\n".join(lines) + "\n"


def html(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    """The table as an HTML ``<table>`` (with the notes as a list after it)."""
    from html import escape

    rows, best, headers = _prepared(spec, summary, missing, paper)
    parts = [f"<table class='results' id='{spec.name}'><caption>{escape(spec.title)}</caption><thead><tr>"]
    parts += [f"<th>{escape(h)}</th>" for h in headers]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = [row.dataset, row.method, *_cells(spec, row, best, paper, lambda t: f"<b>{t}</b>", escape=escape),
                 row.protocol or "–"]
        cells[0], cells[1], cells[-1] = escape(cells[0]), escape(cells[1]), escape(cells[-1])
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    notes = _notes(rows, spec)
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def csv_frame(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None,
              paper: bool = False) -> pd.DataFrame:
    """Long form, full precision: one row per (dataset, method, metric) of the table."""
    records = []
    for row in build_rows(spec, summary, missing, paper):
        for column, label in spec.columns:
            value = row.measured.get(column)
            record = {"table": spec.name, "dataset": row.dataset, "method": row.method, "metric": label, "column": column,
                      "protocol": row.protocol, "measured": value, "missing": row.missing.get(column, "")}
            if paper:
                reported_value = row.reported.get(column)
                record["reported"] = reported_value
                record["difference"] = None if value is None or reported_value is None else value - reported_value
            records.append(record)
    return pd.DataFrame(records)


def render_all(summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> dict[str, str]:
    """{file name: text} for table1/table2 in .md, .tex and .csv (``_paper`` in the names with ``paper``),
    and ``metrics.*`` for the run's other metrics (not with ``paper``: the paper reports none)."""
    suffix = "_paper" if paper else ""
    files = {}
    extra = None if paper else extra_table(summary)
    for spec in (TABLE1, TABLE2, *([extra] if extra else [])):
        files[f"{spec.name}{suffix}.md"] = markdown(spec, summary, missing, paper)
        files[f"{spec.name}{suffix}.tex"] = latex(spec, summary, missing, paper)
        files[f"{spec.name}{suffix}.csv"] = csv_frame(spec, summary, missing, paper).to_csv(index=False)
    return files
