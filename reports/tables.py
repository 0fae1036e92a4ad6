"""The tables of a run (the one table renderer): the paper's Table 1 and Table 2, and a table of the
run's other metrics, from its summary, as Markdown, LaTeX (booktabs), HTML and CSV.

Layout (the paper's): rows grouped by dataset (the paper's datasets first, in its order), methods
in the paper's order (others after, in the order they were run), one row per (dataset, method,
protocol), an arrow per column for the direction, the best measured value of each (dataset,
protocol) group in bold, and each number printed at its metric's paper precision so reported and
measured numbers read alike. Everything about a column (direction, unit, precision, whether it
scores the method, whether it is a face metric) comes from the metric registry.

A face metric (kind ``face``) defined on fewer than all frames shows the share it is defined on,
``0.12 (83%)``; one defined on no frame shows ``no face``. A metric that could not run is printed as
``missing`` with its reason under the table, never as a number. With ``paper=True`` every metric
gets three columns, measured | reported | difference (measured - reported), and the paper's
groups appear even where nothing was measured.

Names (datasets, methods, protocols, reasons) are escaped for each format: Markdown (HTML
entities and backslash escapes, so a ``<script>`` name stays text in a Markdown viewer), LaTeX
(``\\ { } $ & % _ # ^ ~``) and HTML.
"""

from __future__ import annotations

import html as html_text
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from metrics import registry
from reports.paper import PAPER_DATASETS, PAPER_METHOD_ORDER, order_name, paper_name, reported


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (per-frame column, the paper's label)


TABLE1 = TableSpec("table1", "Table 1: image quality and time per frame",
                   (("l2", "L2"), ("psnr", "PSNR"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("time_s", "Time")))
TABLE2 = TableSpec("table2", "Table 2: DECA pose error (PE) and expression error (EE)",
                   (("deca_pe", "PE"), ("deca_ee", "EE")))


# ---------------------------------------------------------------------------- escaping per format

_MARKDOWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", **{c: "\\" + c for c in "\\`*_[]|$~#"}}
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "_": r"\_",
          "#": r"\#", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _one_line(text: object) -> str:
    return re.sub(r"[\r\n\t]+", " ", str(text))


def markdown_escape(text: object) -> str:
    """``text`` as literal Markdown table text: HTML specials as entities, Markdown specials escaped."""
    return "".join(_MARKDOWN.get(c, c) for c in _one_line(text))


def latex_escape(text: object) -> str:
    """``text`` as literal LaTeX text (every special character escaped, one line)."""
    return "".join(_LATEX.get(c, c) for c in _one_line(text))


def html_escape(text: object) -> str:
    return html_text.escape(_one_line(text), quote=True)


# ---------------------------------------------------------------------------- facts from the registry


def direction(column: str) -> tuple[bool, str]:
    """(higher_is_better, unit) of a per-frame column, from the registry; (False, "") if unregistered."""
    spec = registry.column_spec(column)
    return (spec.higher_is_better, spec.unit) if spec is not None else (False, "")


def scores(column: str) -> bool:
    """Whether ``column`` scores the method (a direction applies), not a reference such as the
    ground truth's own curve (the registry's ``reference_columns``)."""
    spec = registry.column_spec(column)
    return spec.scores(column) if spec is not None else True


def is_face(column: str) -> bool:
    spec = registry.column_spec(column)
    return spec is not None and spec.kind == "face"


def format_value(column: str, value: float | None) -> str:
    """``value`` at its metric's paper precision (``MetricSpec.paper_format``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    spec = registry.column_spec(column)
    return format(value, spec.paper_format if spec is not None else ".4g")


def format_difference(column: str, value: float | None) -> str:
    text = format_value(column, value)
    return text if text in ("–",) or text.startswith("-") else f"+{text}"


def extra_table(summary: pd.DataFrame) -> TableSpec | None:
    """A table of the headline columns of every other metric in the run (temporal, face, ...), or None."""
    shown = {c for spec in (TABLE1, TABLE2) for c, _ in spec.columns}
    columns = []
    for column in dict.fromkeys(summary["metric"]) if len(summary) else []:
        spec = registry.column_spec(column)
        if column not in shown and spec is not None and spec.headline == column:
            columns.append((column, column))
    if not columns:
        return None
    return TableSpec("metrics", "Other metrics: temporal consistency, face and landmark measures", tuple(columns))


# ---------------------------------------------------------------------------- rows


@dataclass
class Row:
    dataset: str
    method: str
    protocol: str = ""
    measured: dict[str, float] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)  # share of frames a column is defined on
    missing: dict[str, str] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)


def _ordered(values: Sequence[str], preferred: Sequence[str], key=lambda v: v) -> list[str]:
    rank = {name: i for i, name in enumerate(preferred)}
    appearance = {v: i for i, v in enumerate(values)}
    return sorted(dict.fromkeys(values), key=lambda v: (rank.get(key(v), len(rank)), appearance[v]))


def _coverage(record) -> float:
    coverage = getattr(record, "coverage", None)
    if coverage is not None and not (isinstance(coverage, float) and math.isnan(coverage)):
        return float(coverage)
    frames = getattr(record, "frames", None)
    return float(record.count) / frames if frames else math.nan


def build_rows(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None,
               paper: bool = False) -> list[Row]:
    """The table's rows, grouped and ordered as in the paper, one per (dataset, method, protocol).

    summary: long form with dataset, method, metric, protocol, mean, count, frames[, coverage]
    (:func:`benchmark.results.summary.summarize`).
    missing: rows (dataset, method[, protocol], metric, reason) for metrics that could not run.
    """
    columns = [c for c, _ in spec.columns]
    rows: dict[tuple[str, str, str], Row] = {}
    summary = summary if "dataset" in summary else summary.assign(dataset="")
    summary = summary if "protocol" in summary else summary.assign(protocol="")
    for record in summary[summary["metric"].isin(columns)].itertuples(index=False):
        key = (record.dataset, record.method, str(record.protocol))
        row = rows.setdefault(key, Row(*key))
        if not (isinstance(record.mean, float) and math.isnan(record.mean)):
            row.measured[record.metric] = float(record.mean)
        row.coverage[record.metric] = _coverage(record)
    if missing is not None and len(missing):
        missing = missing if "protocol" in missing else missing.assign(protocol="")
        for record in missing[missing["metric"].isin(_metric_names(columns))].itertuples(index=False):
            protocol = "" if pd.isna(record.protocol) else str(record.protocol)
            # A record without a protocol (a missing.csv of an older run) applies to each of its method's rows.
            keys = [k for k in rows if k[:2] == (record.dataset, record.method)] if not protocol else []
            for key in keys or [(record.dataset, record.method, protocol)]:
                row = rows.setdefault(key, Row(*key))
                for column in _columns_of(record.metric, columns):
                    if column not in row.measured:
                        row.missing[column] = str(record.reason)
    if paper:
        table = reported()
        table = table[table["metric"].isin(columns)]
        for record in table.itertuples(index=False):
            datasets = [record.dataset] if record.dataset else sorted({d for d, _, _ in rows} or {""})
            for dataset in datasets:
                matches = [k for k in rows if k[0] == dataset and paper_name(k[1]) == record.method]
                if not matches and record.dataset:
                    rows[(dataset, record.method, "")] = Row(dataset, record.method)
                    matches = [(dataset, record.method, "")]
                for key in matches:
                    rows[key].reported[record.metric] = float(record.value)
    ordered = []
    for dataset in _ordered([d for d, _, _ in rows], PAPER_DATASETS):
        methods = _ordered([m for d, m, _ in rows if d == dataset], PAPER_METHOD_ORDER, key=order_name)
        for method in methods:
            ordered += [row for (d, m, _), row in rows.items() if d == dataset and m == method]
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


def best_values(rows: Sequence[Row], columns: Sequence[str]) -> dict[tuple[str, str, str], float]:
    """(dataset, protocol, column) -> the best measured value in that group."""
    best: dict[tuple[str, str, str], float] = {}
    for column in columns:
        higher, _ = direction(column)
        for row in rows:
            value = row.measured.get(column)
            if value is None or math.isnan(value):
                continue
            key = (row.dataset, row.protocol, column)
            if key not in best or (value > best[key] if higher else value < best[key]):
                best[key] = value
    return best


# ---------------------------------------------------------------------------- cells


def _header(column: str, label: str) -> tuple[str, str]:
    """Column title with its unit, and the direction arrow where the column scores the method."""
    higher, unit = direction(column)
    arrow = ("↑" if higher else "↓") if scores(column) else ""
    return (f"{label} ({unit})" if unit else label), arrow


def measured_text(column: str, row: Row, best: dict, bold: Callable[[str], str], escape: Callable[[str], str]) -> str:
    """The measured cell: the value (bold where it prints as its group's best; ties all bold), a face
    metric's coverage below 100%, ``no face``, ``missing`` or ``–``."""
    value = row.measured.get(column)
    coverage = row.coverage.get(column, math.nan)
    if value is None:
        if column in row.missing:
            return escape("missing")
        if is_face(column) and coverage == 0:
            return escape("no face")
        return escape("–")
    text = format_value(column, value)
    key = (row.dataset, row.protocol, column)
    text = bold(escape(text)) if key in best and text == format_value(column, best[key]) else escape(text)
    if is_face(column) and coverage < 1:
        text += escape(f" ({math.floor(100 * coverage)}%)")
    return text


def _cells(spec: TableSpec, row: Row, best: dict, paper: bool, bold, escape) -> list[str]:
    cells = []
    for column, _ in spec.columns:
        text = measured_text(column, row, best, bold, escape)
        if paper:
            value, reported_value = row.measured.get(column), row.reported.get(column)
            difference = None if value is None or reported_value is None else value - reported_value
            cells += [text, escape(format_value(column, reported_value)), escape(format_difference(column, difference))]
        else:
            cells.append(text)
    return cells


def _notes(rows: Sequence[Row], spec: TableSpec) -> list[str]:
    """One note per (column, reason) of the missing metrics, naming the rows (unescaped text)."""
    labels = dict(spec.columns)
    several = len({r.protocol for r in rows if r.protocol}) > 1
    reasons: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for column, reason in row.missing.items():
            where = f"{row.dataset}/{row.method}" if row.dataset else row.method
            reasons.setdefault((labels[column], reason), []).append(where + (f" ({row.protocol})" if several else ""))
    return [f"{label}: missing ({reason}) for {', '.join(where)}" for (label, reason), where in reasons.items()]


def _protocols(rows: Sequence[Row]) -> str:
    return ", ".join(sorted({r.protocol for r in rows if r.protocol})) or "none"


def _coverage_note(rows: Sequence[Row], spec: TableSpec) -> list[str]:
    face = [c for c, _ in spec.columns if is_face(c)]
    if any(row.coverage.get(c, 1.0) < 1 for row in rows for c in face):
        return ["Face metrics: (n%) is the share of frames with a face, where a value is defined; "
                "no face: defined on no frame."]
    return []


# ---------------------------------------------------------------------------- formats


def _prepared(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None, paper: bool):
    """(rows, best values, column headers) of a flat rendering (Markdown, HTML)."""
    rows = build_rows(spec, summary, missing, paper)
    best = best_values(rows, [c for c, _ in spec.columns])
    headers = ["Dataset", "Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        title = f"{name} {arrow}".strip()
        headers += [title, f"{name} reported", "Δ"] if paper else [title]
    return rows, best, [*headers, "Protocol"]


def markdown(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    rows, best, headers = _prepared(spec, summary, missing, paper)
    lines = [f"**{spec.title}**" + (" (measured beside the paper's reported numbers)" if paper else ""), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    previous = None
    for row in rows:
        dataset = markdown_escape(row.dataset) if row.dataset != previous else ""
        previous = row.dataset
        cells = [dataset, markdown_escape(row.method), *_cells(spec, row, best, paper, lambda t: f"**{t}**", markdown_escape),
                 markdown_escape(row.protocol or "–")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Measured with protocol(s): {markdown_escape(_protocols(rows))}. Best measured value per dataset "
              "and protocol in bold."]
    lines += [f"- {markdown_escape(note)}" for note in [*_notes(rows, spec), *_coverage_note(rows, spec)]]
    return "\n".join(lines) + "\n"


def _latex_cell(text: str) -> str:
    """A cell of text cabench wrote (numbers, dashes, percentages), escaped for LaTeX."""
    return latex_escape(text).replace("–", "--")


def latex(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    rows = build_rows(spec, summary, missing, paper)
    best = best_values(rows, [c for c, _ in spec.columns])
    arrows = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "": ""}
    width = len(spec.columns) * (3 if paper else 1)
    top = ["Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        heading = f"{latex_escape(name)} {arrows[arrow]}".strip()
        top.append(rf"\multicolumn{{3}}{{c}}{{{heading}}}" if paper else heading)
    lines = [r"\begin{tabular}{l" + "c" * width + "l}", r"\toprule", " & ".join(top) + r" & Protocol \\"]
    if paper:
        rules = " ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(len(spec.columns)))
        lines += [rules, " & " + " & ".join(["measured & reported & $\\Delta$"] * len(spec.columns)) + r" & \\"]
    previous = None
    for row in rows:
        if row.dataset != previous:
            lines += [r"\midrule", rf"\multicolumn{{{width + 2}}}{{l}}{{\textit{{{latex_escape(row.dataset or 'all')}}}}} \\"]
            previous = row.dataset
        cells = _cells(spec, row, best, paper, lambda t: rf"\textbf{{{t}}}", _latex_cell)
        lines.append(" & ".join([latex_escape(row.method), *cells, _latex_cell(row.protocol or "–")]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% {spec.title}; measured with protocol(s): {latex_escape(_protocols(rows))}"]
    lines += [f"% {latex_escape(note)}" for note in [*_notes(rows, spec), *_coverage_note(rows, spec)]]
    return "\n".join(lines) + "\n"


def html(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> str:
    """The table as an HTML ``<table>`` (with the notes as a list after it)."""
    rows, best, headers = _prepared(spec, summary, missing, paper)
    parts = [f"<table class='results' id='{html_escape(spec.name)}'><caption>{html_escape(spec.title)}</caption><thead><tr>"]
    parts += [f"<th>{html_escape(h)}</th>" for h in headers]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = [html_escape(row.dataset), html_escape(row.method),
                 *_cells(spec, row, best, paper, lambda t: f"<b>{t}</b>", html_escape), html_escape(row.protocol or "–")]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    notes = [*_notes(rows, spec), *_coverage_note(rows, spec)]
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html_escape(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def csv_frame(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None,
              paper: bool = False) -> pd.DataFrame:
    """Long form, full precision: one row per (dataset, method, protocol, metric) of the table."""
    records = []
    for row in build_rows(spec, summary, missing, paper):
        for column, label in spec.columns:
            value = row.measured.get(column)
            record = {"table": spec.name, "dataset": row.dataset, "method": row.method, "metric": label, "column": column,
                      "protocol": row.protocol, "measured": value, "coverage": row.coverage.get(column),
                      "missing": row.missing.get(column, "")}
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
