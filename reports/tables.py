"""The tables of a run (the one table renderer): the paper's Table 1 and Table 2, and a table of the
run's other metrics, from its summary, as Markdown, LaTeX (booktabs), HTML and CSV.

Layout (the paper's): rows grouped by dataset (the paper's datasets first, in its order), methods
in the paper's order (others after, in the order they were run), one row per (dataset, method,
protocol), an arrow per column for the direction, the best measured value of each (dataset,
protocol) group in bold, and each number printed at its metric's paper precision so reported and
measured numbers read alike. Everything about a column (direction, unit, precision, whether it
scores the method, whether it is a face metric) comes from the metric registry.

Uncertainty (:class:`Uncertainty`): with ``ci = "pm"`` a measured value shows the half-width of its
block-bootstrap interval (``summary.csv``'s ``ci_low``/``ci_high``), ``28.41 ± 0.12`` (the
intervals are symmetric about the mean: ``mean ± t·se``); with ``ci = "bounds"`` the interval itself,
``28.41 [28.29, 28.53]``; a half-width that rounds to zero at the paper's precision is printed with
one significant digit (``0.95 ± 0.0002``). With ``marks`` (:func:`table_marks`), a value that is not the best but not
significantly worse than it at ``1 - level`` carries a dagger, ``28.39†``: a paired block bootstrap of
its difference to the best on the frames both have, Holm-adjusted over the comparisons with the best
within each (dataset, protocol, column) (:func:`benchmark.results.significance.versus_best`). The
caption says so. Rows whose role is not ``method`` (``roles``: method name -> role, such as the
synthetic degradations' ``sanity``) take no part in the best value or the marks.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchmark.results.bootstrap import BootstrapSettings
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


def competes(method: str, roles: Mapping[str, str] | None) -> bool:
    """Whether ``method`` competes for the best value and the marks: its role is ``method`` (a method
    absent from ``roles``, or every method when there are none, is one)."""
    return (roles or {}).get(method, "method") == "method"


# ---------------------------------------------------------------------------- uncertainty

CI_STYLES = ("pm", "bounds")


@dataclass(frozen=True)
class Uncertainty:
    """What a table shows of how sure its numbers are (see the module docstring): ``ci`` ("pm",
    "bounds" or None), ``marks`` (rows of :func:`table_marks`, or None), and the bootstrap settings
    both came from, which the caption states."""

    ci: str | None = None
    marks: pd.DataFrame | None = None
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)

    def __post_init__(self) -> None:
        if self.ci not in (None, *CI_STYLES):
            raise ValueError(f"ci must be one of {', '.join(CI_STYLES)} or None, got {self.ci!r}")

    def marked(self) -> set[tuple[str, str, str, str]]:
        """(dataset, protocol, column, method) of the values that carry the mark (not the best itself)."""
        if self.marks is None or self.marks.empty:
            return set()
        rows = self.marks[self.marks["not_worse"].astype(bool) & (self.marks["method"] != self.marks["best"])]
        return {(str(r.dataset), str(r.protocol), str(r.metric), str(r.method)) for r in rows.itertuples(index=False)}


def table_columns(summary: pd.DataFrame) -> list[str]:
    """Every column the tables of a run show (Table 1, Table 2 and the other metrics' table)."""
    extra = extra_table(summary)
    return list(dict.fromkeys(c for spec in (TABLE1, TABLE2, *([extra] if extra else [])) for c, _ in spec.columns))


def table_marks(per_frame: pd.DataFrame, summary: pd.DataFrame, roles: Mapping[str, str] | None = None,
                bootstrap: BootstrapSettings | None = None) -> pd.DataFrame:
    """The marks of every table of a run: :func:`~benchmark.results.significance.versus_best` of the
    competing methods (:func:`competes`) on the tables' columns that compare methods (the registry's
    :func:`~metrics.registry.compared_columns`: not the runtime, not reference columns), at
    ``1 - bootstrap.level`` with its resamples and seed."""
    from benchmark.results.significance import versus_best

    bootstrap = bootstrap or BootstrapSettings()
    shown = [c for c in table_columns(summary) if c in per_frame.columns]
    methods = [m for m in dict.fromkeys(per_frame["method"]) if competes(str(m), roles)] if len(per_frame) else []
    return versus_best(per_frame, registry.compared_columns(shown), methods, alpha=bootstrap.alpha,
                       resamples=bootstrap.resamples, seed=bootstrap.seed)


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
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # (ci_low, ci_high)
    competes: bool = True  # takes part in the best value and the marks (see competes())


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
               paper: bool = False, roles: Mapping[str, str] | None = None) -> list[Row]:
    """The table's rows, grouped and ordered as in the paper, one per (dataset, method, protocol).

    summary: long form with dataset, method, metric, protocol, mean, count, frames[, coverage,
    ci_low, ci_high] (:func:`benchmark.results.summary.summarize`).
    missing: rows (dataset, method[, protocol], metric, reason) for metrics that could not run.
    roles: method -> role; rows of methods that do not compete (:func:`competes`) are never best.
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
        low, high = getattr(record, "ci_low", math.nan), getattr(record, "ci_high", math.nan)
        if not (pd.isna(low) or pd.isna(high)):
            row.interval[record.metric] = (float(low), float(high))
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
    for row in rows.values():
        row.competes = competes(row.method, roles)
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
    """(dataset, protocol, column) -> the best measured value of the competing rows in that group."""
    best: dict[tuple[str, str, str], float] = {}
    for column in columns:
        higher, _ = direction(column)
        for row in rows:
            if not row.competes:
                continue
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


@dataclass(frozen=True)
class _Style:
    """How one output format writes bold, the mark and ``±``, and escapes text."""

    bold: Callable[[str], str]
    escape: Callable[[str], str]
    mark: str
    plus_minus: str


def _half_width(column: str, low: float, high: float) -> str:
    half = (high - low) / 2
    text = format_value(column, half)
    if 0 < half < math.inf and not any(c in "123456789" for c in text.split("e")[0]):  # rounds to zero: one digit
        text = format(half, f".{max(0, -math.floor(math.log10(half)))}f")
    return text


def _interval_text(column: str, row: Row, ci: str | None, style: _Style) -> str:
    if ci is None or column not in row.interval:
        return ""
    low, high = row.interval[column]
    if ci == "pm":
        return style.plus_minus + style.escape(_half_width(column, low, high))
    return " " + style.escape(f"[{format_value(column, low)}, {format_value(column, high)}]")


def measured_text(column: str, row: Row, best: dict, style: _Style, uncertainty: Uncertainty | None = None,
                  marked: set | frozenset = frozenset()) -> str:
    """The measured cell: the value (bold where it prints as its group's best; ties all bold; a
    competing row only), the mark where it is not significantly worse than the best, its interval
    (``uncertainty.ci``), a face metric's coverage below 100%, ``no face``, ``missing`` or ``–``."""
    value = row.measured.get(column)
    coverage = row.coverage.get(column, math.nan)
    if value is None:
        if column in row.missing:
            return style.escape("missing")
        if is_face(column) and coverage == 0:
            return style.escape("no face")
        return style.escape("–")
    text = format_value(column, value)
    key = (row.dataset, row.protocol, column)
    is_best = row.competes and key in best and text == format_value(column, best[key])
    text = style.bold(style.escape(text)) if is_best else style.escape(text)
    if not is_best and (*key, row.method) in marked:
        text += style.mark
    text += _interval_text(column, row, uncertainty.ci if uncertainty else None, style)
    if is_face(column) and coverage < 1:
        text += style.escape(f" ({math.floor(100 * coverage)}%)")
    return text


def _cells(spec: TableSpec, row: Row, best: dict, paper: bool, style: _Style, uncertainty: Uncertainty | None,
           marked: set) -> list[str]:
    cells = []
    for column, _ in spec.columns:
        text = measured_text(column, row, best, style, uncertainty, marked)
        if paper:
            value, reported_value = row.measured.get(column), row.reported.get(column)
            difference = None if value is None or reported_value is None else value - reported_value
            cells += [text, style.escape(format_value(column, reported_value)),
                      style.escape(format_difference(column, difference))]
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


def _uncertainty_notes(rows: Sequence[Row], spec: TableSpec, uncertainty: Uncertainty | None) -> list[str]:
    """What the intervals and the mark mean, and which rows do not compete (unescaped text)."""
    notes = []
    compared = registry.compared_columns(c for c, _ in spec.columns)
    if uncertainty is not None:
        settings = uncertainty.bootstrap
        level = f"{100 * settings.level:g}%"
        how = (f"block bootstrap of the mean over frames (sequences and contiguous blocks of frames resampled; "
               f"{settings.resamples} resamples, seed {settings.seed})")
        if uncertainty.ci == "pm" and any(row.interval for row in rows):
            notes.append(f"±: half-width of the {level} interval of the mean, {how}.")
        elif uncertainty.ci == "bounds" and any(row.interval for row in rows):
            notes.append(f"[low, high]: the {level} interval of the mean, {how}.")
        if uncertainty.marks is not None and any(c in row.measured for row in rows if row.competes for c in compared):
            notes.append(f"†: not significantly worse than the best (bold) at alpha {settings.alpha:.2g}: paired block "
                         "bootstrap of the difference to the best on the frames both have, Holm-adjusted over the "
                         "comparisons with the best in each dataset, protocol and column; an unmarked value is "
                         "significantly worse.")
    apart = list(dict.fromkeys(row.method for row in rows if not row.competes))
    if apart:
        notes.append(f"Sanity rows ({', '.join(apart)}) take no part in the best value or the marks.")
    return notes


# ---------------------------------------------------------------------------- formats

def _latex_cell(text: str) -> str:
    """A cell of text cabench wrote (numbers, dashes, percentages), escaped for LaTeX."""
    return latex_escape(text).replace("–", "--")


MARKDOWN = _Style(lambda t: f"**{t}**", markdown_escape, "†", " ± ")
LATEX = _Style(lambda t: rf"\textbf{{{t}}}", _latex_cell, r"$^\dagger$", r" $\pm$ ")
HTML = _Style(lambda t: f"<b>{t}</b>", html_escape, "†", " ± ")


@dataclass
class _Prepared:
    rows: list[Row]
    best: dict[tuple[str, str, str], float]
    marked: set
    notes: list[str]


def _prepare(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None, paper: bool,
             roles: Mapping[str, str] | None, uncertainty: Uncertainty | None) -> _Prepared:
    rows = build_rows(spec, summary, missing, paper, roles)
    best = best_values(rows, [c for c, _ in spec.columns])
    marked = uncertainty.marked() if uncertainty is not None else set()
    notes = [*_notes(rows, spec), *_coverage_note(rows, spec), *_uncertainty_notes(rows, spec, uncertainty)]
    return _Prepared(rows, best, marked, notes)


def _headers(spec: TableSpec, paper: bool) -> list[str]:
    """Column headers of a flat rendering (Markdown, HTML)."""
    headers = ["Dataset", "Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        title = f"{name} {arrow}".strip()
        headers += [title, f"{name} reported", "Δ"] if paper else [title]
    return [*headers, "Protocol"]


def markdown(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
             roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> str:
    table = _prepare(spec, summary, missing, paper, roles, uncertainty)
    headers = _headers(spec, paper)
    lines = [f"**{spec.title}**" + (" (measured beside the paper's reported numbers)" if paper else ""), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    previous = None
    for row in table.rows:
        dataset = markdown_escape(row.dataset) if row.dataset != previous else ""
        previous = row.dataset
        cells = [dataset, markdown_escape(row.method),
                 *_cells(spec, row, table.best, paper, MARKDOWN, uncertainty, table.marked),
                 markdown_escape(row.protocol or "–")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Measured with protocol(s): {markdown_escape(_protocols(table.rows))}. Best measured value per "
              "dataset and protocol in bold."]
    lines += [f"- {markdown_escape(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"


def latex(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
          roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> str:
    table = _prepare(spec, summary, missing, paper, roles, uncertainty)
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
    for row in table.rows:
        if row.dataset != previous:
            lines += [r"\midrule", rf"\multicolumn{{{width + 2}}}{{l}}{{\textit{{{latex_escape(row.dataset or 'all')}}}}} \\"]
            previous = row.dataset
        cells = _cells(spec, row, table.best, paper, LATEX, uncertainty, table.marked)
        lines.append(" & ".join([latex_escape(row.method), *cells, _latex_cell(row.protocol or "–")]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% {spec.title}; measured with protocol(s): {latex_escape(_protocols(table.rows))}"]
    lines += [f"% {latex_escape(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"


def html(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
         roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> str:
    """The table as an HTML ``<table>`` (with the notes as a list after it)."""
    table = _prepare(spec, summary, missing, paper, roles, uncertainty)
    parts = [f"<table class='results' id='{html_escape(spec.name)}'><caption>{html_escape(spec.title)}</caption><thead><tr>"]
    parts += [f"<th>{html_escape(h)}</th>" for h in _headers(spec, paper)]
    parts.append("</tr></thead><tbody>")
    for row in table.rows:
        cells = [html_escape(row.dataset), html_escape(row.method),
                 *_cells(spec, row, table.best, paper, HTML, uncertainty, table.marked), html_escape(row.protocol or "–")]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    if table.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html_escape(n)}</li>" for n in table.notes) + "</ul>")
    return "".join(parts)


def csv_frame(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
              roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> pd.DataFrame:
    """Long form, full precision: one row per (dataset, method, protocol, metric) of the table, with the
    interval of the mean (``ci_low``, ``ci_high``), whether the value is the group's best and
    whether it carries the mark (empty where the row or column takes no part)."""
    table = _prepare(spec, summary, missing, paper, roles, uncertainty)
    compared = registry.compared_columns(c for c, _ in spec.columns)
    records = []
    for row in table.rows:
        for column, label in spec.columns:
            value = row.measured.get(column)
            low, high = row.interval.get(column, (None, None))
            key = (row.dataset, row.protocol, column)
            takes_part = row.competes and value is not None
            is_best = takes_part and key in table.best and value == table.best[key]
            marked = (is_best or (*key, row.method) in table.marked) if (
                takes_part and column in compared and uncertainty is not None and uncertainty.marks is not None) else None
            record = {"table": spec.name, "dataset": row.dataset, "method": row.method, "metric": label, "column": column,
                      "protocol": row.protocol, "measured": value, "ci_low": low, "ci_high": high,
                      "coverage": row.coverage.get(column), "missing": row.missing.get(column, ""),
                      "best": is_best if takes_part else None, "not_worse_than_best": marked}
            if paper:
                reported_value = row.reported.get(column)
                record["reported"] = reported_value
                record["difference"] = None if value is None or reported_value is None else value - reported_value
            records.append(record)
    return pd.DataFrame(records)


def render_all(summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
               roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> dict[str, str]:
    """{file name: text} for table1/table2 in .md, .tex and .csv (``_paper`` in the names with ``paper``),
    and ``metrics.*`` for the run's other metrics (not with ``paper``: the paper reports none)."""
    suffix = "_paper" if paper else ""
    files = {}
    extra = None if paper else extra_table(summary)
    for spec in (TABLE1, TABLE2, *([extra] if extra else [])):
        files[f"{spec.name}{suffix}.md"] = markdown(spec, summary, missing, paper, roles, uncertainty)
        files[f"{spec.name}{suffix}.tex"] = latex(spec, summary, missing, paper, roles, uncertainty)
        files[f"{spec.name}{suffix}.csv"] = csv_frame(spec, summary, missing, paper, roles, uncertainty).to_csv(index=False)
    return files
