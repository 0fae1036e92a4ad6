"""The protocol matrix of a run: method × metric × protocol, so a reader sees at once whether a
ranking ("ours beats INSTA on PSNR") depends on how the metric is computed.

Per dataset: an overview, one line per metric column (the tables' columns that compare methods:
not the runtime, which no protocol changes), with the best method under each protocol and the
lowest Kendall tau between two protocols' rankings; then per metric column a table of each
method's mean and rank (1 = best) under every protocol, and the tau of every pair of protocols.
The numbers are :mod:`benchmark.results.rankings`'s; rows of methods that do not compete (the
synthetic degradations: :func:`reports.tables.competes`) are left out, since a degradation built
to be bad ranks last under any protocol and would make the rankings look more alike than the
methods' are. Written as Markdown (``protocols.md``), CSV (``protocols.csv``: every rank;
``protocols_tau.csv``: every tau) and as a section of the HTML report.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from benchmark.results.rankings import protocol_rankings, ranking_agreement
from metrics import registry
from reports.tables import competes, format_value, html_escape, markdown_escape, table_columns

INTRODUCTION = ("Each protocol's ranking of the methods (1 = best by the metric's direction; equal means share the "
                "better rank) and Kendall's tau-b between two protocols' rankings (1: the same order, 0: unrelated, "
                "-1: reversed). Every protocol scores the same outputs.")


def matrix(summary: pd.DataFrame, roles: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rankings, agreement) of the run's competing methods on its tables' compared columns."""
    columns = registry.compared_columns(c for c in table_columns(summary))
    methods = [m for m in dict.fromkeys(summary["method"]) if competes(str(m), roles)] if len(summary) else []
    rankings = protocol_rankings(summary, columns, methods)
    return rankings, ranking_agreement(rankings)


def _label(column: str) -> str:
    spec = registry.column_spec(column)
    return f"{column} {spec.arrow}" if spec is not None else column


def _tau(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}"


def _best_by_protocol(rows: pd.DataFrame) -> str:
    """``A (canonical, insta); B (nerface)``, or ``A (every protocol)``."""
    best = rows[rows["rank"] == 1].groupby("method", sort=False)["protocol"].agg(list)
    every = rows["protocol"].nunique()
    return "; ".join(f"{method} ({'every protocol' if len(protocols) == every > 1 else ', '.join(map(str, protocols))})"
                     for method, protocols in best.items())


def _lowest_tau(agreement: pd.DataFrame) -> str:
    defined = agreement.dropna(subset=["tau"])
    if defined.empty:
        return "–"
    low = defined.loc[defined["tau"].idxmin()]
    return f"{low['tau']:.2f} ({low['protocol_a']} vs {low['protocol_b']})"


def _sections(rankings: pd.DataFrame, agreement: pd.DataFrame):
    """Per dataset: (dataset, overview rows, [(column, method × protocol cells, tau rows, protocols)])."""
    for dataset, by_dataset in rankings.groupby("dataset", sort=False):
        overview, details = [], []
        for column, rows in by_dataset.groupby("metric", sort=False):
            protocols = list(dict.fromkeys(rows["protocol"]))
            pairs = agreement[(agreement["dataset"] == dataset) & (agreement["metric"] == column)]
            overview.append([_label(column), ", ".join(map(str, protocols)), _best_by_protocol(rows), _lowest_tau(pairs)])
            cells = []
            for method, by_method in rows.groupby("method", sort=False):
                found = {p: r for p, r in zip(by_method["protocol"], by_method.itertuples(index=False))}
                cells.append([str(method), *[_mean_rank(column, found.get(p)) for p in protocols]])
            tau = {(a, b): value for a, b, value in zip(pairs["protocol_a"], pairs["protocol_b"], pairs["tau"])}
            taus = [[str(a), *[_tau(tau.get((a, b), tau.get((b, a)))) if j > i else "" for j, b in enumerate(protocols)][1:]]
                    for i, a in enumerate(protocols[:-1])]
            details.append((column, cells, taus, protocols))
        yield dataset, overview, details


def _mean_rank(column: str, record) -> str:
    if record is None:
        return "–"
    rank = "" if pd.isna(record.rank) else f" ({int(record.rank)})"
    return f"{format_value(column, record.mean)}{rank}"


def markdown(rankings: pd.DataFrame, agreement: pd.DataFrame) -> str:
    """The matrix as Markdown (see the module docstring)."""
    def row(cells) -> str:
        return "| " + " | ".join(markdown_escape(c) for c in cells) + " |"

    lines = ["# Protocol matrix", "", INTRODUCTION]
    if rankings.empty:
        return "\n".join([*lines, "", "No metric column that compares methods in this run."]) + "\n"
    if rankings["protocol"].nunique() < 2:
        lines += ["", "This run has one protocol: there is no other ranking to compare with (evaluate with "
                  "`protocol = \"all\"` or a list of protocols)."]
    for dataset, overview, details in _sections(rankings, agreement):
        lines += ["", f"## {markdown_escape(dataset or 'all')}", "",
                  row(["Metric", "Protocols", "Best (under protocols)", "Lowest tau (protocols)"]), "|---|---|---|---|",
                  *[row(cells) for cells in overview]]
        for column, cells, taus, protocols in details:
            lines += ["", f"### {markdown_escape(_label(column))}", "", row(["Method", *protocols]),
                      "|" + "---|" * (len(protocols) + 1), *[row(c) for c in cells]]
            if taus:
                lines += ["", row(["tau", *protocols[1:]]), "|" + "---|" * len(protocols), *[row(t) for t in taus]]
    return "\n".join(lines) + "\n"


def html(rankings: pd.DataFrame, agreement: pd.DataFrame) -> str:
    """The matrix as HTML tables (a section of the report)."""
    def table(headers, rows, caption: str = "") -> str:
        head = "".join(f"<th>{html_escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html_escape(c)}</td>" for c in cells) + "</tr>" for cells in rows)
        caption = f"<caption>{html_escape(caption)}</caption>" if caption else ""
        return f"<table class='results matrix'>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [f"<p>{html_escape(INTRODUCTION)}</p>"]
    for dataset, overview, details in _sections(rankings, agreement):
        parts.append(f"<h3>{html_escape(dataset or 'all')}</h3>")
        parts.append(table(["Metric", "Protocols", "Best (under protocols)", "Lowest tau (protocols)"], overview))
        for column, cells, taus, protocols in details:
            parts.append(table(["Method", *protocols], cells, f"{_label(column)}: mean (rank) per protocol"))
            if taus:
                parts.append(table(["tau", *protocols[1:]], taus, f"{_label(column)}: Kendall tau between rankings"))
    return "".join(parts)


def render_files(summary: pd.DataFrame, roles: Mapping[str, str] | None = None) -> dict[str, str]:
    """{file name: text}: ``protocols.md``, ``protocols.csv`` (rankings), ``protocols_tau.csv`` (agreement)."""
    rankings, agreement = matrix(summary, roles)
    return {"protocols.md": markdown(rankings, agreement), "protocols.csv": rankings.to_csv(index=False),
            "protocols_tau.csv": agreement.to_csv(index=False)}
