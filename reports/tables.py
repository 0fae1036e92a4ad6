"""The tables of a run (the one table renderer): the paper's Table 1 and Table 2, and a table of the
run's other metrics, from its summary, as Markdown, LaTeX (booktabs), HTML and CSV.

Layout (the paper's): rows grouped by dataset (the paper's datasets first, in its order), methods
in the paper's order (others after, in the order they were run), one row per (dataset, method,
protocol), an arrow per column for the direction, the best measured value of each (dataset,
protocol) group in bold, and each number printed at its metric's paper precision so reported and
measured numbers read alike (a value that precision would print as zero, such as a warping error of
4.75e-05, gets three significant digits instead). Everything about a column (direction, unit,
precision, whether it scores the method, whether it is a face metric) comes from the metric registry.

Sanity checks (methods whose role is ``sanity``, e.g. the ground truth degraded on purpose; the run
folder's ``methods.csv``, :func:`benchmark.results.schema.read_methods`) are checks of the metrics,
not competitors: they are listed apart after the methods (a second table in Markdown and HTML, a
section of the LaTeX tabular) and are never bold, and the best value is taken over methods only.

A per-sequence view (a summary with a ``sequence`` column, ``summarize(per_frame, by=("dataset",
"sequence", "method"))``) gets a Sequence column and its best value per (dataset, sequence, protocol):
papers on INSTA-style data report per subject.

Uncertainty (:class:`Uncertainty`): with ``ci = "pm"`` a measured value shows the half-width of its
block-bootstrap interval (``summary.csv``'s ``ci_low``/``ci_high``), ``28.41 ± 0.12`` (the
intervals are symmetric about the mean: ``mean ± t·se``); with ``ci = "bounds"`` the interval itself,
``28.41 [28.29, 28.53]``; a half-width that rounds to zero at the paper's precision is printed with
one significant digit (``0.95 ± 0.0002``). With ``marks`` (:func:`table_marks`), a value that is not
the best but not significantly worse than it at ``1 - level`` carries a dagger, ``28.39†``: a paired
block bootstrap of its difference to the best on the frames both have, Holm-adjusted over the
comparisons with the best within each (dataset[, sequence], protocol, column)
(:func:`benchmark.results.significance.versus_best`). The notes say so. Sanity rows take no part in
the best value or the marks (:func:`~benchmark.results.schema.is_sanity`, the one role predicate).

A face metric (kind ``face``) defined on fewer than all frames shows the share it is defined on,
``0.12 (83%)``; one defined on no frame shows ``no face``. A metric that could not run is printed as
``missing`` with its reason under the table, never as a number; a reason shared by every row is said
once, "for all methods", and a table whose every value is missing is said to be not measured, in one
sentence, instead of a grid of ``missing``. With ``paper=True`` every metric
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.schema import SANITY_ROLE, is_sanity
from metrics import registry
from reports.paper import PAPER_DATASETS, PAPER_METHOD_ORDER, order_name, paper_names, reported


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


def markdown_grid(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table of cells already written as Markdown (escape them with :func:`markdown_escape`):
    the header row, the rule, one line per row."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                      *("| " + " | ".join(cells) + " |" for cells in rows)]) + "\n"


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
    """``value`` at its metric's paper precision (``MetricSpec.paper_format``); a non-zero value that
    precision would print as zero (``0.0000`` for 4.75e-05) gets three significant digits instead."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = format(value, _paper_format(column))
    if value != 0 and float(text) == 0:
        text = format(value, ".3g")
    return text


def _paper_format(column: str) -> str:
    spec = registry.column_spec(column)
    return spec.paper_format if spec is not None else ".4g"


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
    kinds = dict.fromkeys(registry.column_spec(column).kind for column, _ in columns)
    what = [KIND_HEADINGS.get(kind, kind) for kind in kinds]
    return TableSpec("metrics", f"Other metrics: {' and '.join(what)}", tuple(columns))


# The heading of each metric kind in the other metrics' table (MetricSpec.kind).
KIND_HEADINGS = {"frame": "image quality", "temporal": "temporal consistency", "face": "face and landmark measures"}


# ---------------------------------------------------------------------------- uncertainty

CI_STYLES = ("pm", "bounds")


@dataclass(frozen=True)
class Uncertainty:
    """What a table shows of how sure its numbers are (see the module docstring): ``ci`` ("pm",
    "bounds" or None), ``marks`` (rows of :func:`table_marks`, or None), and the bootstrap settings
    both came from, which the notes state."""

    ci: str | None = None
    marks: pd.DataFrame | None = None
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)

    def __post_init__(self) -> None:
        if self.ci not in (None, *CI_STYLES):
            raise ValueError(f"ci must be one of {', '.join(CI_STYLES)} or None, got {self.ci!r}")

    def marked(self) -> set[tuple[str, str, str, str, str]]:
        """(dataset, sequence, protocol, column, method) of the values that carry the mark (not the best
        itself); sequence is "" for marks over whole datasets."""
        if self.marks is None or self.marks.empty:
            return set()
        rows = self.marks[self.marks["not_worse"].astype(bool) & (self.marks["method"] != self.marks["best"])]
        sequences = rows["sequence"] if "sequence" in rows else [""] * len(rows)
        return {(str(r.dataset), str(s), str(r.protocol), str(r.metric), str(r.method))
                for r, s in zip(rows.itertuples(index=False), sequences)}


def table_columns(summary: pd.DataFrame) -> list[str]:
    """Every column the tables of a run show (Table 1, Table 2 and the other metrics' table)."""
    extra = extra_table(summary)
    return list(dict.fromkeys(c for spec in (TABLE1, TABLE2, *([extra] if extra else [])) for c, _ in spec.columns))


def table_marks(per_frame: pd.DataFrame, summary: pd.DataFrame, roles: Mapping[str, str] | None = None,
                bootstrap: BootstrapSettings | None = None) -> pd.DataFrame:
    """The marks of every table of a run: :func:`~benchmark.results.significance.versus_best` of the
    methods (sanity rows left out, :func:`~benchmark.results.schema.is_sanity`) on the tables' columns
    that compare methods (the registry's :func:`~metrics.registry.compared_columns`: not the runtime,
    not reference columns), at ``1 - bootstrap.level`` with its resamples and seed. For a per-sequence
    ``summary`` (with a ``sequence`` column) the comparisons run within each sequence, and the marks
    gain a ``sequence`` column."""
    from benchmark.results.significance import versus_best

    bootstrap = bootstrap or BootstrapSettings()
    shown = registry.compared_columns(c for c in table_columns(summary) if c in per_frame.columns)
    methods = [m for m in dict.fromkeys(per_frame["method"]) if not is_sanity(str(m), roles)] if len(per_frame) else []

    def marks_of(rows: pd.DataFrame) -> pd.DataFrame:
        return versus_best(rows, shown, methods, alpha=bootstrap.alpha, resamples=bootstrap.resamples,
                           seed=bootstrap.seed)

    if "sequence" not in summary or "sequence" not in per_frame:
        return marks_of(per_frame)
    parts = [marks_of(rows).assign(sequence=str(sequence)) for sequence, rows in per_frame.groupby("sequence", sort=False)]
    return pd.concat(parts, ignore_index=True) if parts else marks_of(per_frame).assign(sequence="")


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
    sequence: str = ""      # set in a per-sequence table
    role: str = "method"    # "sanity": listed apart, never the best, never marked

    @property
    def sanity(self) -> bool:
        return self.role == SANITY_ROLE

    @property
    def group(self) -> tuple[str, str, str]:
        """(dataset, sequence, protocol): the rows among which one value is the best."""
        return (self.dataset, self.sequence, self.protocol)

    @property
    def where(self) -> str:
        """The row named for a note: ``dataset/[sequence/]method``."""
        return "/".join(p for p in (self.dataset, self.sequence, self.method) if p)


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


# The dataset cell of reported numbers whose table names no dataset (the paper's Table 2).
UNNAMED_PAPER_DATASET = "paper (no dataset named)"


def build_rows(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None,
               paper: bool = False, roles: Mapping[str, str] | None = None) -> list[Row]:
    """The table's rows, grouped and ordered as in the paper, one per (dataset, method, protocol), or
    per (dataset, sequence, method, protocol) when ``summary`` has a ``sequence`` column.

    summary: long form with dataset, method, metric, protocol, mean, count, frames[, coverage,
    ci_low, ci_high] (:func:`benchmark.results.summary.summarize`).
    missing: rows (dataset[, sequence], method[, protocol], metric, reason) for metrics that could not
    run; a record without a sequence (or protocol) applies to each of its method's rows.
    roles: {method: role} (:func:`benchmark.results.schema.read_methods`); sanity rows come after the
    methods of their group.
    """
    columns = [c for c, _ in spec.columns]
    rows: dict[tuple[str, str, str, str], Row] = {}
    summary = summary if "dataset" in summary else summary.assign(dataset="")
    summary = summary if "protocol" in summary else summary.assign(protocol="")
    summary = summary if "sequence" in summary else summary.assign(sequence="")

    def row_of(dataset: str, sequence: str, method: str, protocol: str) -> Row:
        key = (dataset, sequence, method, protocol)
        if key not in rows:
            rows[key] = Row(dataset, method, protocol, sequence=sequence,
                            role=SANITY_ROLE if is_sanity(method, roles) else "method")
        return rows[key]

    for record in summary[summary["metric"].isin(columns)].itertuples(index=False):
        row = row_of(record.dataset, str(record.sequence), record.method, str(record.protocol))
        if not (isinstance(record.mean, float) and math.isnan(record.mean)):
            row.measured[record.metric] = float(record.mean)
        row.coverage[record.metric] = _coverage(record)
        low, high = getattr(record, "ci_low", math.nan), getattr(record, "ci_high", math.nan)
        if not (pd.isna(low) or pd.isna(high)):
            row.interval[record.metric] = (float(low), float(high))
    if missing is not None and len(missing):
        for record in missing[missing["metric"].isin(_metric_names(columns))].to_dict("records"):
            protocol = _text(record.get("protocol"))
            sequence = _text(record.get("sequence"))
            # A record without a protocol (a missing.csv of an older run) or without a sequence (one per
            # method) applies to each of its method's rows.
            keys = [k for k in rows if k[0] == record["dataset"] and k[2] == record["method"]
                    and (not sequence or k[1] == sequence) and (not protocol or k[3] == protocol)]
            targets = [rows[k] for k in keys] or [row_of(record["dataset"], sequence, record["method"], protocol)]
            for row in targets:
                for column in _columns_of(record["metric"], columns):
                    if column not in row.measured:
                        row.missing[column] = str(record["reason"])
    if paper:
        table = reported()
        table = table[table["metric"].isin(columns)]
        # Table 2 names no dataset: its numbers go beside the rows of the paper's datasets only (never
        # beside another dataset's measurements, e.g. the synthetic one's), else in a group of their own.
        papers = [d for d in dict.fromkeys(k[0] for k in rows) if d in PAPER_DATASETS] or [UNNAMED_PAPER_DATASET]
        for record in table.itertuples(index=False):
            for dataset in [record.dataset] if record.dataset else papers:
                matches = [k for k in rows if k[0] == dataset and record.method in paper_names(k[2])]
                if not matches and (record.dataset or dataset == UNNAMED_PAPER_DATASET):
                    row_of(dataset, "", record.method, "")
                    matches = [(dataset, "", record.method, "")]
                for key in matches:
                    rows[key].reported[record.metric] = float(record.value)
    ordered = []
    for dataset in _ordered([k[0] for k in rows], PAPER_DATASETS):
        for sequence in dict.fromkeys(k[1] for k in rows if k[0] == dataset):
            group = [row for k, row in rows.items() if k[0] == dataset and k[1] == sequence]
            for method in method_order([r.method for r in group], roles):
                ordered += [row for row in group if row.method == method]
    return ordered


def method_order(methods: Sequence[str], roles: Mapping[str, str] | None = None) -> list[str]:
    """Method names in table order: methods in the paper's order (others after, in the given order),
    then the sanity checks. Plots and the report's sample strips follow it too."""
    names = list(dict.fromkeys(str(m) for m in methods))
    return [*_ordered([m for m in names if not is_sanity(m, roles)], PAPER_METHOD_ORDER, key=order_name),
            *_ordered([m for m in names if is_sanity(m, roles)], PAPER_METHOD_ORDER, key=order_name)]


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


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


def best_values(rows: Sequence[Row], columns: Sequence[str]) -> dict[tuple[tuple[str, str, str], str], float]:
    """((dataset, sequence, protocol), column) -> the best value measured by a method (sanity checks
    never count) in that group. The runtime column has none: it is one wall-clock measurement per
    rendered sequence, as noisy as the machine was busy, so no method is shown as the fastest on it."""
    best: dict[tuple[tuple[str, str, str], str], float] = {}
    for column in columns:
        if _is_runtime(column):
            continue
        higher, _ = direction(column)
        for row in rows:
            value = row.measured.get(column)
            if row.sanity or value is None or math.isnan(value):
                continue
            key = (row.group, column)
            if key not in best or (value > best[key] if higher else value < best[key]):
                best[key] = value
    return best


def _is_runtime(column: str) -> bool:
    spec = registry.column_spec(column)
    return spec is not None and spec.kind == "runtime"


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
    """The interval's half-width at the paper's precision; one that rounds to zero there keeps one
    significant digit (``0.0002``)."""
    half = (high - low) / 2
    if not math.isfinite(half):
        return format_value(column, half)
    text = format(half, _paper_format(column))
    if 0 < half and not any(c in "123456789" for c in text.split("e")[0]):
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
    """The measured cell: the value (bold where it prints as its group's best and the row is a method;
    ties all bold), the mark where it is not significantly worse than the best, its interval
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
    key = (row.group, column)
    is_best = not row.sanity and key in best and text == format_value(column, best[key])
    text = style.bold(style.escape(text)) if is_best else style.escape(text)
    if not is_best and not row.sanity and (row.dataset, row.sequence, row.protocol, column, row.method) in marked:
        text += style.mark
    text += _interval_text(column, row, uncertainty.ci if uncertainty else None, style)
    if is_face(column) and coverage < 1:
        text += style.escape(f" ({math.floor(100 * coverage)}%)")
    return text


def _cells(table: Prepared, row: Row, style: _Style) -> list[str]:
    cells = []
    for column, _ in table.spec.columns:
        text = measured_text(column, row, table.best, style, table.uncertainty, table.marked)
        if table.paper:
            value, reported_value = row.measured.get(column), row.reported.get(column)
            difference = None if value is None or reported_value is None else value - reported_value
            cells += [text, style.escape(format_value(column, reported_value)),
                      style.escape(format_difference(column, difference))]
        else:
            cells.append(text)
    return cells


def _notes(rows: Sequence[Row], spec: TableSpec) -> list[str]:
    """The missing metrics, one note per reason and set of rows (columns sharing both are named together;
    a reason shared by every row of the table is said once, "for all methods"); unescaped text."""
    labels = dict(spec.columns)
    several = len({r.protocol for r in rows if r.protocol}) > 1

    def name(row: Row) -> str:
        return row.where + (f" ({row.protocol})" if several else "")

    everyone = {name(row) for row in rows}
    by_reason: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        for column, reason in row.missing.items():
            by_reason.setdefault(reason, {}).setdefault(labels[column], []).append(name(row))
    notes = []
    for reason, per_label in by_reason.items():
        groups: dict[tuple[str, ...], list[str]] = {}
        for label, where in per_label.items():
            groups.setdefault(tuple(where), []).append(label)
        for where, together in groups.items():
            who = "all methods" if set(where) == everyone else ", ".join(where)
            together = sorted(together, key=list(labels.values()).index)
            notes.append(f"{', '.join(together)}: missing ({reason}) for {who}")
    return notes


def _protocols(rows: Sequence[Row]) -> str:
    return ", ".join(sorted({r.protocol for r in rows if r.protocol})) or "none"


def _coverage_note(rows: Sequence[Row], spec: TableSpec) -> list[str]:
    face = [c for c, _ in spec.columns if is_face(c)]
    if any(row.coverage.get(c, 1.0) < 1 for row in rows for c in face):
        return ["Face metrics: (n%) is the share of frames with a face, where a value is defined; "
                "no face: defined on no frame."]
    return []


def _uncertainty_notes(rows: Sequence[Row], spec: TableSpec, uncertainty: Uncertainty | None) -> list[str]:
    """What the intervals and the mark mean (unescaped text)."""
    if uncertainty is None:
        return []
    notes = []
    settings = uncertainty.bootstrap
    level = f"{100 * settings.level:g}%"
    how = (f"block bootstrap of the mean over frames (sequences and contiguous blocks of frames resampled; "
           f"{settings.resamples} resamples, seed {settings.seed})")
    if uncertainty.ci == "pm" and any(row.interval for row in rows):
        notes.append(f"±: half-width of the {level} interval of the mean, {how}.")
    elif uncertainty.ci == "bounds" and any(row.interval for row in rows):
        notes.append(f"[low, high]: the {level} interval of the mean, {how}.")
    compared = registry.compared_columns(c for c, _ in spec.columns)
    if uncertainty.marks is not None and any(c in row.measured for row in rows if not row.sanity for c in compared):
        within = "dataset, sequence" if any(row.sequence for row in rows) else "dataset"
        notes.append(f"†: not significantly worse than the best (bold) at alpha {settings.alpha:.2g}: paired block "
                     "bootstrap of the difference to the best on the frames both have, Holm-adjusted over the "
                     f"comparisons with the best in each {within}, protocol and column; an unmarked value is "
                     "significantly worse.")
    return notes


# ---------------------------------------------------------------------------- formats


def _latex_cell(text: str) -> str:
    """A cell of text cabench wrote (numbers, dashes, percentages), escaped for LaTeX."""
    return latex_escape(text).replace("–", "--")


MARKDOWN = _Style(lambda t: f"**{t}**", markdown_escape, "†", " ± ")
LATEX = _Style(lambda t: rf"\textbf{{{t}}}", _latex_cell, r"$^\dagger$", r" $\pm$ ")
HTML = _Style(lambda t: f"<b>{t}</b>", html_escape, "†", " ± ")


@dataclass
class Prepared:
    """A table ready to render: its rows (methods, then sanity checks), the best values, headers and notes."""

    spec: TableSpec
    rows: list[Row]
    best: dict
    headers: list[str]
    paper: bool
    notes: list[str]
    uncertainty: Uncertainty | None = None
    marked: set = field(default_factory=set)  # Uncertainty.marked() of the table's uncertainty

    @property
    def methods(self) -> list[Row]:
        return [row for row in self.rows if not row.sanity]

    @property
    def sanity(self) -> list[Row]:
        return [row for row in self.rows if row.sanity]

    @property
    def per_sequence(self) -> bool:
        return any(row.sequence for row in self.rows)

    @property
    def name(self) -> str:
        return self.spec.name + ("_per_sequence" if self.per_sequence else "")

    @property
    def measured_nothing(self) -> bool:
        """Every value of the table is missing (and no reported number stands beside them)."""
        return bool(self.rows) and not self.paper and not any(row.measured for row in self.rows)

    def footer(self) -> str:
        where = "dataset, sequence and protocol" if self.per_sequence else "dataset and protocol"
        text = f"Measured with protocol(s): {_protocols(self.rows)}. Best measured value per {where} in bold"
        shown = [column for column, _ in self.spec.columns]
        text += " (not the time: one wall-clock measurement per sequence)." if any(map(_is_runtime, shown)) else "."
        if self.sanity:
            names = ", ".join(dict.fromkeys(row.method for row in self.sanity))
            text += (f" Sanity rows ({names}) take no part in the best value or the marks. They check the metrics "
                     "(the ground truth degraded on purpose, to show that each metric notices) and are listed apart.")
        return text


SANITY_HEADING = "Sanity checks (not methods: the ground truth degraded on purpose; never bold or marked)"


def prepare(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
            roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None,
            notes: Sequence[str] = ()) -> Prepared:
    """The rows, best values, marks, headers and notes of a table (``notes``: sentences about the run,
    such as its mask and alignment policies, written under the table)."""
    rows = build_rows(spec, summary, missing, paper, roles)
    best = best_values(rows, [c for c, _ in spec.columns])
    headers = ["Dataset", *(["Sequence"] if any(row.sequence for row in rows) else []), "Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        title = f"{name} {arrow}".strip()
        headers += [title, f"{name} reported", "Δ"] if paper else [title]
    all_notes = [*notes, *_notes(rows, spec), *_coverage_note(rows, spec), *_uncertainty_notes(rows, spec, uncertainty)]
    marked = uncertainty.marked() if uncertainty is not None else set()
    return Prepared(spec, rows, best, [*headers, "Protocol"], paper, all_notes, uncertainty, marked)


def _title(table: Prepared) -> str:
    return table.spec.title + (" (measured beside the paper's reported numbers)" if table.paper else "") + (
        ", per sequence" if table.per_sequence else "")


NOT_MEASURED = "Not measured in this run: every value of this table is missing (reasons below)."


def markdown(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
             roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None,
             notes: Sequence[str] = ()) -> str:
    table = prepare(spec, summary, missing, paper, roles, uncertainty, notes)
    lines = [f"**{markdown_escape(_title(table))}**", ""]
    if table.measured_nothing:
        lines.append(NOT_MEASURED)
    else:
        lines += _markdown_rows(table, table.methods)
        if table.sanity:
            lines += ["", f"*{markdown_escape(SANITY_HEADING)}*", "", *_markdown_rows(table, table.sanity)]
        lines += ["", markdown_escape(table.footer())]
    lines += [f"- {markdown_escape(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _markdown_rows(table: Prepared, rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "---|" * len(table.headers)]
    previous = None
    for row in rows:
        dataset = markdown_escape(row.dataset) if row.dataset != previous else ""
        previous = row.dataset
        cells = [dataset, *([markdown_escape(row.sequence)] if table.per_sequence else []), markdown_escape(row.method),
                 *_cells(table, row, MARKDOWN),
                 markdown_escape(row.protocol or "–")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def latex(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
          roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None,
          notes: Sequence[str] = ()) -> str:
    table = prepare(spec, summary, missing, paper, roles, uncertainty, notes)
    comments = [f"% {latex_escape(note)}" for note in table.notes]
    if table.measured_nothing:
        return "\n".join([f"% {latex_escape(_title(table))}: {latex_escape(NOT_MEASURED)}", *comments]) + "\n"
    arrows = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "": ""}
    keys = ["Sequence"] if table.per_sequence else []
    width = len(spec.columns) * (3 if paper else 1) + len(keys)
    top = [*keys, "Method"]
    for column, label in spec.columns:
        name, arrow = _header(column, label)
        heading = f"{latex_escape(name)} {arrows[arrow]}".strip()
        top.append(rf"\multicolumn{{3}}{{c}}{{{heading}}}" if paper else heading)
    lines = [r"\begin{tabular}{" + "l" * (1 + len(keys)) + "c" * (width - len(keys)) + "l}", r"\toprule",
             " & ".join(top) + r" & Protocol \\"]
    if paper:
        first = 2 + len(keys)
        rules = " ".join(rf"\cmidrule(lr){{{first + 3 * i}-{first + 2 + 3 * i}}}" for i in range(len(spec.columns)))
        lines += [rules, " & " * len(keys) + " & " + " & ".join(["measured & reported & $\\Delta$"] * len(spec.columns))
                  + r" & \\"]
    for rows, prefix in ((table.methods, ""), (table.sanity, "Sanity checks (not methods): ")):
        previous = None
        for row in rows:
            if row.dataset != previous:
                heading = latex_escape(prefix + (row.dataset or "all"))
                lines += [r"\midrule", rf"\multicolumn{{{width + 2}}}{{l}}{{\textit{{{heading}}}}} \\"]
                previous = row.dataset
            cells = _cells(table, row, LATEX)
            lines.append(" & ".join([*([latex_escape(row.sequence)] if keys else []), latex_escape(row.method), *cells,
                                     _latex_cell(row.protocol or "–")]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% {latex_escape(_title(table))}; {latex_escape(table.footer())}"]
    return "\n".join([*lines, *comments]) + "\n"


def html(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
         roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None,
         notes: Sequence[str] = ()) -> str:
    """The table as an HTML ``<table>`` (sanity checks in a second one), with the notes as a list after it."""
    table = prepare(spec, summary, missing, paper, roles, uncertainty, notes)
    if table.measured_nothing:
        parts = [f"<div class='not-measured' id='{html_escape(table.name)}'><p><b>{html_escape(_title(table))}</b>: "
                 f"{html_escape(NOT_MEASURED)}</p></div>"]
    else:
        parts = [_html_table(table, table.methods, table.name, _title(table))]
        if table.sanity:
            parts.append(_html_table(table, table.sanity, f"{table.name}-sanity", f"{_title(table)}: {SANITY_HEADING}",
                                     "results sanity"))
        parts.append(f"<p class='footer'>{html_escape(table.footer())}</p>")
    if table.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html_escape(n)}</li>" for n in table.notes) + "</ul>")
    return "".join(parts)


def _html_table(table: Prepared, rows: Sequence[Row], identifier: str, caption: str, css: str = "results") -> str:
    names = 3 if table.per_sequence else 2  # the leading cells that name the row (left-aligned)
    parts = [f"<table class='{css}' id='{html_escape(identifier)}'><caption>{html_escape(caption)}</caption><thead><tr>"]
    parts += [f"<th{' class=name' if i < names else ''}>{html_escape(h)}</th>" for i, h in enumerate(table.headers)]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = [html_escape(row.dataset), *([html_escape(row.sequence)] if table.per_sequence else []),
                 html_escape(row.method), *_cells(table, row, HTML), html_escape(row.protocol or "–")]
        parts.append("<tr>" + "".join(f"<td{' class=name' if i < names else ''}>{c}</td>" for i, c in enumerate(cells))
                     + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def csv_frame(spec: TableSpec, summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
              roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None) -> pd.DataFrame:
    """Long form, full precision: one row per (dataset[, sequence], method, protocol, metric) of the table,
    with the method's role, the interval of the mean (``ci_low``, ``ci_high``), whether the value is its
    group's best and whether it carries the mark (empty where the row or column takes no part: a
    sanity row, the runtime, a table without marks)."""
    table = prepare(spec, summary, missing, paper, roles, uncertainty)
    compared = registry.compared_columns(c for c, _ in spec.columns)
    with_marks = uncertainty is not None and uncertainty.marks is not None
    records = []
    for row in table.rows:
        for column, label in spec.columns:
            value = row.measured.get(column)
            low, high = row.interval.get(column, (None, None))
            key = (row.group, column)
            takes_part = not row.sanity and value is not None
            is_best = takes_part and key in table.best and value == table.best[key]
            marked = (is_best or (row.dataset, row.sequence, row.protocol, column, row.method) in table.marked) if (
                takes_part and column in compared and with_marks) else None
            record = {"table": spec.name, "dataset": row.dataset, **({"sequence": row.sequence} if "sequence" in summary
                                                                      else {}),
                      "method": row.method, "role": row.role, "metric": label, "column": column,
                      "protocol": row.protocol, "measured": value, "ci_low": low, "ci_high": high,
                      "coverage": row.coverage.get(column), "missing": row.missing.get(column, ""),
                      "best": is_best if takes_part else None, "not_worse_than_best": marked}
            if paper:
                reported_value = row.reported.get(column)
                record["reported"] = reported_value
                record["difference"] = None if value is None or reported_value is None else value - reported_value
            records.append(record)
    return pd.DataFrame(records)


def shown_tables(summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False) -> list[TableSpec]:
    """The tables a run has something for: Table 1, Table 2 and the other metrics' table, each only
    where one of its columns was measured or is missing with a reason (with ``paper``, Tables 1 and 2
    always: the paper's numbers fill them)."""
    if paper:
        return [TABLE1, TABLE2]
    specs = [TABLE1, TABLE2, *([extra] if (extra := extra_table(summary)) else [])]
    return [spec for spec in specs if build_rows(spec, summary, missing)]


def render_all(summary: pd.DataFrame, missing: pd.DataFrame | None = None, paper: bool = False,
               roles: Mapping[str, str] | None = None, uncertainty: Uncertainty | None = None,
               notes: Sequence[str] = ()) -> dict[str, str]:
    """{file name: text} for table1/table2 in .md, .tex and .csv (``_paper`` in the names with ``paper``),
    and ``metrics.*`` for the run's other metrics (not with ``paper``: the paper reports none); a table
    with no row (Table 1 of a run of temporal metrics only) is not written (:func:`shown_tables`).

    A per-sequence summary (with a ``sequence`` column) gives ``table1_per_sequence.md``, ... ;
    ``roles``: {method: role} (sanity checks apart); ``uncertainty``: intervals and marks (the marks of a
    per-sequence summary from :func:`table_marks` on it); ``notes``: sentences about the run under each table."""
    suffix = ("_per_sequence" if "sequence" in summary else "") + ("_paper" if paper else "")
    files = {}
    for spec in shown_tables(summary, missing, paper):
        files[f"{spec.name}{suffix}.md"] = markdown(spec, summary, missing, paper, roles, uncertainty, notes)
        files[f"{spec.name}{suffix}.tex"] = latex(spec, summary, missing, paper, roles, uncertainty, notes)
        files[f"{spec.name}{suffix}.csv"] = csv_frame(spec, summary, missing, paper, roles, uncertainty).to_csv(
            index=False)
    return files
