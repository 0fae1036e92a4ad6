"""Summary tables of an evaluation (methods x metrics, mean ± std) in Markdown and LaTeX.

Arrows and units come from the metric registry; metrics that could not run are listed under the
table with their reasons, never shown as numbers. Every table names the protocol it was computed with.
"""

from __future__ import annotations

import math

import pandas as pd

from metrics import registry


def _header(column: str) -> tuple[str, str]:
    """Column title with its unit, and the direction arrow where the column scores the method."""
    spec = registry.column_spec(column)
    if spec is None:
        return column, ""
    unit = f" ({spec.unit})" if spec.unit else ""
    return f"{column}{unit}", spec.arrow if spec.scores(column) else ""


def _cell(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if math.isinf(mean):
        return "inf"
    digits = 4 if abs(mean) < 10 else 2
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _wide(summary: pd.DataFrame) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    if summary.empty:  # every metric asked for was missing
        return [], [], {}
    methods = list(dict.fromkeys(summary["method"]))
    metrics = list(dict.fromkeys(summary["metric"]))
    cells = {(r.method, r.metric): _cell(r.mean, r.std) for r in summary.itertuples()}
    return methods, metrics, cells


def summary_markdown(summary: pd.DataFrame, protocol: str, missing: dict[str, str] | None = None) -> str:
    methods, metrics, cells = _wide(summary)
    headers = [f"{name} {arrow}".strip() for name, arrow in map(_header, metrics)]
    lines = [f"Protocol: `{protocol}` (mean ± std over frames)", "", "| method | " + " | ".join(headers) + " |",
             "|---|" + "---|" * len(metrics)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(cells.get((method, m), "–") for m in metrics) + " |")
    for name, reason in (missing or {}).items():
        lines.append(f"\n{name}: missing ({reason})")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, replacement in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, replacement)
    return text


def summary_latex(summary: pd.DataFrame, protocol: str, missing: dict[str, str] | None = None) -> str:
    methods, metrics, cells = _wide(summary)
    arrows = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "": ""}
    headers = [f"{_latex_escape(name)} {arrows[arrow]}".strip() for name, arrow in map(_header, metrics)]
    lines = [r"\begin{tabular}{l" + "c" * len(metrics) + "}", r"\toprule", "Method & " + " & ".join(headers) + r" \\",
             r"\midrule"]
    for method in methods:
        row = [cells.get((method, m), "--").replace("±", r"$\pm$").replace("–", "--") for m in metrics]
        lines.append(f"{_latex_escape(method)} & " + " & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% protocol: {protocol}"]
    lines += [f"% {name}: missing ({reason})" for name, reason in (missing or {}).items()]
    return "\n".join(lines) + "\n"
