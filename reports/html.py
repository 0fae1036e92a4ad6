"""The self-contained HTML report of a run folder (one file, every image embedded as base64 PNG).

It holds what a reader needs to judge the numbers: Table 1 and Table 2 in the paper's layout
(each value with the half-width of its block-bootstrap interval, the best bold and a dagger on the
values not significantly worse), the bootstrap settings, the protocol matrix when the run has
several protocols, the summary (mean ± std, the interval of the mean and the frame and sequence
counts of every metric column), the metrics that could not run and why, the plots, a strip of
sample frames per method under the ground truth's, the protocol and its description, the config
used, and the versions of Python and the libraries.
"""

from __future__ import annotations

import base64
import platform
from collections.abc import Mapping
from html import escape
from pathlib import Path

import pandas as pd

from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.files import atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.schema import SUMMARY_COLUMNS, read_run
from benchmark.results.summary import missing_by_method, summarize

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
caption { font-weight: bold; text-align: left; padding: 4px 0; }
img { max-width: 100%; margin: 4px 0; }
figure { display: inline-block; margin: 6px; vertical-align: top; }
.strip td { text-align: left; vertical-align: middle; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
"""


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("cabench", "torch", "numpy", "pandas", "scikit-image", "opencv-python-headless", "lpips",
                    "diffusers", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed" if package != "cabench" else "source checkout"
    return versions


def _summary_table(summary: pd.DataFrame, bootstrap: BootstrapSettings) -> str:
    headers = [h for h in SUMMARY_COLUMNS if h in summary.columns]
    rows = ["<table class='results' id='summary'><caption>Summary: mean ± std over frames (NaN skipped, counted; "
            f"coverage = share of frames with a value); ci_low, ci_high: the {100 * bootstrap.level:g}% "
            "block-bootstrap interval of the mean over n_frames frames of n_sequences sequences</caption>",
            "<thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead><tbody>"]
    for record in summary.to_dict("records"):
        cells = []
        for h in headers:
            value = record.get(h, "")
            cells.append(f"{value:.5g}" if isinstance(value, float) else escape(str(value)))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _method_name(folder: Path) -> str:
    """The method's name as the run knew it (its ``method.json``), else its folder's name."""
    import json

    try:
        return str(json.loads((folder / "method.json").read_text())["method"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


def _samples(run: Path) -> str:
    parts = []
    for gt in sorted(RunFolder(run).parts.glob("*/*/gt_samples.png")):
        sequence_folder = gt.parent
        label = f"{sequence_folder.parent.name} / {sequence_folder.name}"
        rows = [f"<tr><td>ground truth</td><td>{_image(gt, 'ground truth ' + label)}</td></tr>"]
        for method in sorted(p for p in sequence_folder.iterdir() if (p / "samples.png").exists()):
            name = _method_name(method)
            rows.append(f"<tr><td>{escape(name)}</td><td>{_image(method / 'samples.png', name)}</td></tr>")
        parts.append(f"<h3>{escape(label)}</h3><table class='strip'>{''.join(rows)}</table>")
    return "".join(parts) or "<p>No sample frames stored.</p>"


def _statistics(bootstrap: BootstrapSettings) -> str:
    return (f"<h2>Statistics</h2><p>Intervals: {escape(bootstrap.describe())}. Each is the block-bootstrap interval "
            "of a mean over frames: sequences are resampled, and contiguous blocks of frames within each (circular "
            "block bootstrap, block length from each sequence's autocorrelation), because adjacent frames score "
            "alike; the interval is mean ± t·se. In the tables, ± is its half-width, bold the best value per "
            "dataset, protocol and column, and † a value not significantly worse than the best at alpha "
            f"{bootstrap.alpha:.2g} (paired block bootstrap on the frames both have, Holm-adjusted over the "
            "comparisons with the best). The bar plots' error bars are these intervals.</p>")


def render_report(run: str | Path, config_text: str = "", protocols: dict[str, str] | None = None,
                  title: str = "cabench report", bootstrap: BootstrapSettings | None = None,
                  summary: pd.DataFrame | None = None, marks: pd.DataFrame | None = None,
                  roles: Mapping[str, str] | None = None) -> str:
    """The HTML text of the report of run folder ``run`` (its per_frame.csv, missing.csv, plots/ and
    sample strips). ``protocols``: {protocol id: its description} (default: the ids the results name).
    ``summary`` and ``marks`` (:func:`reports.tables.table_marks`) are computed with ``bootstrap``
    (default settings) unless given; ``roles``: method -> role (rows not ``method`` do not compete)."""
    from reports import matrix, tables

    run = Path(run)
    bootstrap = bootstrap or BootstrapSettings()
    per_frame, missing = read_run(run)
    if summary is None:
        summary = summarize(per_frame, bootstrap=bootstrap)
    if marks is None:
        marks = tables.table_marks(per_frame, summary, roles, bootstrap)
    uncertainty = tables.Uncertainty("pm", marks, bootstrap)
    missing = missing_by_method(missing)
    found = [str(p) for p in dict.fromkeys(per_frame["protocol"].dropna())] + [str(p) for p in missing.get("protocol", [])]
    protocols = protocols if protocols is not None else dict.fromkeys(p for p in found if p)
    body = [f"<h1>{escape(title)}</h1>", f"<p>Run folder: <code>{escape(str(run))}</code></p>", "<h2>Protocol</h2><ul>"]
    for protocol, description in protocols.items():
        body.append(f"<li><code>{escape(protocol)}</code>: {escape(description or '')}</li>")
    body.append("</ul><h2>Tables</h2>")
    specs = [tables.TABLE1, tables.TABLE2, tables.extra_table(summary)]
    body += [tables.html(spec, summary, missing if not missing.empty else None, roles=roles, uncertainty=uncertainty)
             for spec in specs if spec]
    body.append(_statistics(bootstrap))
    if summary["protocol"].nunique() > 1:
        body += ["<h2>Protocol matrix</h2>", matrix.html(*matrix.matrix(summary, roles))]
    if not missing.empty:
        body.append("<h2>Missing metrics</h2><ul>")
        for (metric, reason), rows in missing.groupby(["metric", "reason"], sort=False):
            where = ", ".join(dict.fromkeys(f"{d}/{m}" for d, m in zip(rows["dataset"], rows["method"])))
            body.append(f"<li>{escape(metric)}: missing ({escape(reason)}) for {escape(where)}</li>")
        body.append("</ul>")
    body += ["<h2>Summary</h2><details open><summary>every metric column: mean ± std, the interval of the mean, "
             "frames counted</summary>", _summary_table(summary, bootstrap), "</details><h2>Plots</h2>"]
    for png in sorted((run / "plots").glob("*.png")):
        body.append(f"<figure>{_image(png, png.stem)}<figcaption>{escape(png.stem)}</figcaption></figure>")
    body += ["<h2>Sample frames</h2>", _samples(run)]
    body.append("<h2>Versions</h2><table id='versions'>" + "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in _versions().items()) + "</table>")
    if config_text:
        body.append(f"<h2>Config</h2><pre>{escape(config_text)}</pre>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(run: str | Path, config_text: str = "", protocols: dict[str, str] | None = None,
                 title: str = "cabench report", bootstrap: BootstrapSettings | None = None,
                 summary: pd.DataFrame | None = None, marks: pd.DataFrame | None = None,
                 roles: Mapping[str, str] | None = None) -> Path:
    """Write ``report.html`` into ``run`` (see :func:`render_report`)."""
    run = Path(run)
    text = render_report(run, config_text, protocols, title, bootstrap, summary, marks, roles)
    return atomic_write_text(run / "report.html", text)
