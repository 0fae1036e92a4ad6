"""The self-contained HTML report of a run folder (one file, every image embedded as base64 PNG).

It opens with what a reader looks at first, and keeps the facts behind the numbers for last:
- Table 1 in the paper's layout (each value with the half-width of its block-bootstrap interval, the
  best bold and a dagger on the values not significantly worse; sanity checks apart, from the run's
  ``methods.csv``) and its plot, the means per method of its columns with their intervals;
- sample frames per sequence: each method's frames (in table order) over the ground truth's same
  frames, with the error map between the two, frame ids on every tile;
- the temporal-consistency curves (the paper's Fig. 7);
- Table 2 and the other metrics' table, per sequence when a dataset has several; the bootstrap
  settings; the protocol matrix when the run has several protocols;
- the metrics that could not run and why, once per reason ("all methods" where it applies to all);
- the other plots (per-frame traces, the other metrics' means), each with its caption;
- the summary (mean ± std, the interval of the mean, the frame and sequence counts and the coverage
  of every metric column);
- the run: when, with which cabench (version, git commit), on what host (CPU, GPUs, device, torch
  threads), the mask and alignment policies in sentences (a masked evaluation, or one on 3 of 48
  frames, says so), the protocols with their full definitions and the datasets (sequences, split,
  frames, resolution) and the weight files each metric loaded (name, SHA-256, verified), from the
  run's ``metadata.json``; the library versions and the config used.
Wide tables scroll sideways instead of wrapping a cell over two lines.
"""

from __future__ import annotations

import base64
import platform
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.files import atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.schema import SUMMARY_COLUMNS, read_metadata, read_methods, read_run
from benchmark.results.summary import missing_by_method, summarize

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
div.scroll { overflow-x: auto; max-width: 100%; }
td.sub { color: #666; font-size: 12px; }
tr.method td { padding-top: 10px; }
th.name, td.name, #summary td:nth-child(-n+4) { text-align: left; }
table.facts td, table.facts th { text-align: left; }
table.sanity { color: #555; }
caption { font-weight: bold; text-align: left; padding: 4px 0; }
img { max-width: 100%; margin: 4px 0; }
figure { display: inline-block; margin: 6px; vertical-align: top; max-width: 100%; }
figcaption { font-size: 12px; color: #444; max-width: 900px; }
.strip td { text-align: left; vertical-align: middle; }
p.footer { font-size: 12px; color: #444; margin-top: 0; }
ul.notes { font-size: 12px; color: #444; }
.policy { background: #fff7e0; padding: 6px 10px; border-left: 4px solid #e0a000; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

PLOT_GROUPS = (("temporal", "Temporal consistency (the paper's Fig. 7)"), ("bars", "Means per method"),
               ("trace", "Per-frame traces"))


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def _versions(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The run's library versions (its metadata), else those of this Python."""
    if metadata.get("libraries"):
        return {str(k): str(v) for k, v in metadata["libraries"].items()}
    from importlib import metadata as installed

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("cabench", "torch", "numpy", "pandas", "scikit-image", "opencv-python-headless", "lpips",
                    "diffusers", "matplotlib"):
        try:
            versions[package] = installed.version(package)
        except installed.PackageNotFoundError:
            versions[package] = "not installed" if package != "cabench" else "source checkout"
    return versions


def _facts(rows: list[tuple[str, str]], identifier: str) -> str:
    return (f"<table class='facts' id='{identifier}'>"
            + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>")


def _run_section(metadata: Mapping[str, Any], notes: list[str]) -> str:
    """Date, version, commit, host and the policy sentences."""
    if not metadata:
        return "<p>This run folder has no metadata.json (written by an older cabench).</p>"
    source = metadata.get("cabench", {})
    host = metadata.get("host", {})
    commit = source.get("commit") or "not a git checkout"
    if source.get("dirty"):
        commit += " (with uncommitted changes)"
    rows = [("created (UTC)", str(metadata.get("created", ""))), ("cabench", str(source.get("version", ""))),
            ("git commit", commit), ("host", f"{host.get('cpu', '')} × {host.get('cpu_count', '')} "
                                             f"({host.get('platform', '')})"),
            ("GPUs", ", ".join(host.get("gpus") or []) or "none"), ("device", str(host.get("device", ""))),
            ("torch threads", f"{host.get('torch_threads', '')} (OMP_NUM_THREADS={host.get('OMP_NUM_THREADS') or 'unset'})"),
            ("time_s", str(metadata.get("time_s", "")))]
    policy = "".join(f"<p class='policy'>{escape(n)}</p>" for n in notes)
    return _facts(rows, "run") + policy


def _datasets_section(metadata: Mapping[str, Any]) -> str:
    datasets = metadata.get("datasets") or []
    if not datasets:
        return ""
    head = ["dataset", "kind", "split", "sequence", "frames", "in split", "resolution", "fps", "mask"]
    rows = ["<table class='facts' id='datasets'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>"]
    for dataset in datasets:
        for sequence in dataset.get("sequences", []):
            cells = [dataset.get("name"), dataset.get("kind"), dataset.get("split"), sequence.get("name"),
                     sequence.get("frames"), sequence.get("split_frames"), sequence.get("resolution"),
                     sequence.get("fps") or "–", "yes" if sequence.get("mask") else "no"]
            rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "<h3>Datasets</h3>" + "".join(rows)


def _weights_section(metadata: Mapping[str, Any]) -> str:
    """Per metric, the weight files its numbers came from: file name, SHA-256, whether it is the manifest's."""
    used = metadata.get("weights") or {}
    if not used:
        return ""
    head = ["metric", "weight", "file", "SHA-256", "verified"]
    rows = ["<table class='facts' id='weights'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>"]
    for metric, records in used.items():
        for record in records:
            verified = "yes (the manifest's file)" if record.get("verified") else "no: unverified (not the manifest's SHA-256)"
            cells = [metric, record.get("name"), record.get("file"), record.get("sha256"), verified]
            rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "<h3>Weight files</h3>" + "".join(rows)


def _protocols_section(metadata: Mapping[str, Any], protocols: Mapping[str, str]) -> str:
    defined = {p["id"]: p.get("definition", "") for p in metadata.get("protocols", []) if "id" in p}
    items = []
    for protocol in dict.fromkeys([*defined, *protocols]):
        text = defined.get(protocol) or protocols.get(protocol) or ""
        paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip())
        items.append(f"<li><code>{escape(protocol)}</code>{paragraphs}</li>")
    return "<ul class='protocols'>" + "".join(items) + "</ul>"


def _number(column: str, value: object) -> str:
    from reports.tables import format_value

    return format_value(column, float(value)) if isinstance(value, (int, float)) else escape(str(value))


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
            if h in ("mean", "std", "ci_low", "ci_high"):
                cells.append(_number(str(record["metric"]), value))
            elif h == "coverage" and isinstance(value, float):
                cells.append(f"{100 * value:.0f}%" if value == value else "–")
            else:
                cells.append(escape(str(value)))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _missing_section(missing: pd.DataFrame, methods: list[str]) -> str:
    """One line per reason and set of rows: the metrics it concerns and where ("all methods" if so)."""
    from reports.runinfo import missing_notes

    notes = missing_notes(missing, methods)
    return "<h2>Missing metrics</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else ""


def _plot_order(png: Path, columns: list[str]) -> tuple:
    stem = png.stem
    group = next((i for i, (prefix, _) in enumerate(PLOT_GROUPS) if f"{prefix}_" in f"_{stem}_"), len(PLOT_GROUPS))
    rank = next((i for i, c in enumerate(columns) if f"_{c}" in stem), len(columns))
    return group, rank, stem


def _plots_section(run: Path, columns: list[str], pngs: list[Path] | None = None) -> str:
    """``pngs`` (default: every plot of the run) grouped, each with its caption."""
    pngs = sorted((run / "plots").glob("*.png") if pngs is None else pngs, key=lambda p: _plot_order(p, columns))
    if not pngs:
        return "<p>No plots (run with plots).</p>"
    parts, current = [], None
    for png in pngs:
        group = _plot_order(png, columns)[0]
        if group != current:
            title = PLOT_GROUPS[group][1] if group < len(PLOT_GROUPS) else "Other plots"
            parts.append(f"<h3>{escape(title)}</h3>")
            current = group
        parts.append(_figures([png]))
    return "".join(parts)


def _figures(pngs: list[Path]) -> str:
    """Each plot with its caption (the sentence stored in the PNG)."""
    from reports.plots import caption_of

    captions = [caption_of(png) or png.stem for png in pngs]
    return "".join(f"<figure>{_image(png, caption)}<figcaption>{escape(caption)}</figcaption></figure>"
                   for png, caption in zip(pngs, captions))


ERROR_GAIN = 4  # the error map shows 4 x the mean absolute difference over RGB: 64 grey levels or more is white


def _error_image(method_png: Path, gt_png: Path) -> str:
    """The error map of a method's strip against the ground truth's (the same frames, tile for tile):
    per pixel the mean absolute difference over RGB times :data:`ERROR_GAIN`, black where equal."""
    import io

    import numpy as np
    from PIL import Image

    method = np.asarray(Image.open(method_png).convert("RGB"), dtype=np.int16)
    truth = np.asarray(Image.open(gt_png).convert("RGB"), dtype=np.int16)
    if method.shape != truth.shape:
        return ""
    error = np.clip(np.abs(method - truth).mean(axis=2) * ERROR_GAIN, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(error).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='error map' src='data:image/png;base64,{data}'>"


def _samples(run: Path, per_frame: pd.DataFrame, order: list[str], roles: Mapping[str, str]) -> str:
    """Per sequence and method, in table order (sanity checks after): the method's sample frames, the
    ground truth's same frames right under them, and the error map between the two."""
    from benchmark.results.schema import is_sanity

    folder = RunFolder(run)
    parts = []
    for (dataset, sequence), group in per_frame.groupby(["dataset", "sequence"], sort=False):
        gt = folder.sequence_folder(str(dataset), str(sequence)) / "gt_samples.png"
        if not gt.exists():
            continue
        label = f"{dataset} / {sequence}"
        truth = _image(gt, "ground truth " + label)
        rows = []
        present = set(map(str, group["method"]))
        methods = [m for m in order if m in present] + [m for m in dict.fromkeys(map(str, group["method"])) if m not in order]
        sanity_started = False
        for method in methods:
            strip = folder.pair_folder(str(dataset), str(sequence), method) / "samples.png"
            if not strip.exists():
                continue
            if is_sanity(method, roles) and not sanity_started:
                rows.append("<tr><td colspan='2'><i>Sanity checks (not methods: the ground truth degraded on purpose)"
                            "</i></td></tr>")
                sanity_started = True
            rows += [f"<tr class='method'><td>{escape(method)}</td><td>{_image(strip, method)}</td></tr>",
                     f"<tr><td class='sub'>ground truth</td><td>{truth}</td></tr>",
                     f"<tr><td class='sub'>error ×{ERROR_GAIN}</td><td>{_error_image(strip, gt)}</td></tr>"]
        parts.append(f"<h3>{escape(label)}</h3><table class='strip'>{''.join(rows)}</table>")
    return ("<p>Each method's frames over the ground truth's same frames, and the error map between them: the "
            f"mean absolute difference over RGB, ×{ERROR_GAIN} (black: equal; white: 64 grey levels or more).</p>"
            + "".join(parts)) if parts else "<p>No sample frames stored.</p>"


def _scroll(table: str) -> str:
    """A wide table scrolls sideways rather than wrapping its cells (``value ± half-width`` stays on one line)."""
    return f"<div class='scroll'>{table}</div>"


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
                  roles: Mapping[str, str] | None = None, per_sequence: pd.DataFrame | None = None,
                  per_sequence_marks: pd.DataFrame | None = None) -> str:
    """The HTML text of the report of run folder ``run`` (its per_frame.csv, missing.csv, methods.csv,
    metadata.json, plots/ and sample strips). ``protocols``: {protocol id: its description} (default:
    the definitions in the metadata, else the ids the results name). ``summary`` and ``marks``
    (:func:`reports.tables.table_marks`), and for a run with several sequences in a dataset
    ``per_sequence`` (the summary by dataset, sequence and method) and ``per_sequence_marks``, are
    computed with ``bootstrap`` (default settings) unless given; ``roles``: {method: role} (default:
    the run's ``methods.csv``)."""
    from reports import matrix, tables
    from reports.runinfo import policy_notes

    run = Path(run)
    bootstrap = bootstrap or BootstrapSettings()
    per_frame, raw_missing = read_run(run)
    roles = read_methods(run) if roles is None else roles
    metadata = read_metadata(run)
    notes = policy_notes(metadata)
    if summary is None:
        summary = summarize(per_frame, bootstrap=bootstrap)
    if marks is None:
        marks = tables.table_marks(per_frame, summary, roles, bootstrap)
    missing = missing_by_method(raw_missing)
    found = [str(p) for p in dict.fromkeys(per_frame["protocol"].dropna())] + [str(p) for p in missing.get("protocol", [])]
    protocols = protocols if protocols is not None else dict.fromkeys(p for p in found if p)
    shown_missing = missing if not missing.empty else None
    specs = tables.shown_tables(summary, shown_missing)
    uncertainty = tables.Uncertainty("pm", marks, bootstrap)
    columns = [c for spec in specs for c, _ in spec.columns]
    methods = list(dict.fromkeys(map(str, per_frame["method"])))
    plots = sorted((run / "plots").glob("*.png"), key=lambda png: _plot_order(png, columns))
    headline = [run / "plots" / f"bars_{column}.png" for column, _ in (specs[0].columns if specs else ())]
    headline = [png for png in headline if png.exists()]  # the first table's plot: its columns' means
    curves = [png for png in plots if _plot_order(png, columns)[0] == 0]  # the temporal group: the paper's Fig. 7
    # What a reader looks at first: Table 1 and its plot, sample frames beside their ground truth, the
    # Fig.-7 curves; then the other tables, the statistics and the rest of the plots; the run's facts last.
    body = [f"<h1>{escape(title)}</h1>", *[_scroll(tables.html(spec, summary, shown_missing, roles=roles,
                                                                uncertainty=uncertainty, notes=notes)) for spec in specs[:1]],
            _figures(headline), "<h2>Sample frames</h2>", _samples(run, per_frame, tables.method_order(methods, roles), roles)]
    if curves:
        body += ["<h2>Temporal consistency (the paper's Fig. 7)</h2>", _figures(curves)]
    body.append("<h2>Tables</h2>")
    body += [_scroll(tables.html(spec, summary, shown_missing, roles=roles, uncertainty=uncertainty, notes=notes))
             for spec in specs[1:]]
    if len(per_frame) and (per_frame.groupby("dataset")["sequence"].nunique() > 1).any():
        if per_sequence is None:
            per_sequence = summarize(per_frame, by=("dataset", "sequence", "method"), bootstrap=bootstrap)
        if per_sequence_marks is None:
            per_sequence_marks = tables.table_marks(per_frame, per_sequence, roles, bootstrap)
        by_sequence = tables.Uncertainty("pm", per_sequence_marks, bootstrap)
        body.append("<h2>Per sequence</h2><details open><summary>each table per sequence (subject), best per "
                    "sequence in bold</summary>")
        body += [_scroll(tables.html(spec, per_sequence, raw_missing if len(raw_missing) else None, roles=roles,
                                     uncertainty=by_sequence)) for spec in specs]
        body.append("</details>")
    body.append(_statistics(bootstrap))
    if summary["protocol"].nunique() > 1:
        body += ["<h2>Protocol matrix</h2>", _scroll(matrix.html(*matrix.matrix(summary, roles)))]
    body.append(_missing_section(missing, methods))
    rest = [png for png in plots if png not in headline and png not in curves]
    if rest or not plots:
        body += ["<h2>Plots</h2>", _plots_section(run, columns, rest)]
    body += ["<h2>Summary</h2><details><summary>every metric column: mean ± std, the interval of the mean, frames "
             "and sequences counted, coverage (click to open)</summary>", _scroll(_summary_table(summary, bootstrap)),
             "</details>",
             f"<h2>The run</h2><p>Run folder: <code>{escape(str(run))}</code></p>", _run_section(metadata, notes),
             _datasets_section(metadata), "<h3>Protocol</h3>", _protocols_section(metadata, protocols),
             _weights_section(metadata)]
    body.append("<h2>Versions</h2>" + _facts(list(_versions(metadata).items()), "versions"))
    if config_text:
        body.append(f"<h2>Config</h2><pre>{escape(config_text)}</pre>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(run: str | Path, config_text: str = "", protocols: dict[str, str] | None = None,
                 title: str = "cabench report", bootstrap: BootstrapSettings | None = None,
                 summary: pd.DataFrame | None = None, marks: pd.DataFrame | None = None,
                 roles: Mapping[str, str] | None = None, per_sequence: pd.DataFrame | None = None,
                 per_sequence_marks: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` into ``run`` (see :func:`render_report`)."""
    run = Path(run)
    text = render_report(run, config_text, protocols, title, bootstrap, summary, marks, roles, per_sequence,
                         per_sequence_marks)
    return atomic_write_text(run / "report.html", text)
