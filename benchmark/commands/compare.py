"""`cabench compare --run DIR`: paired comparisons of a run's methods on the same frames.

For each pair of methods (or each method against ``--baseline``), per dataset, protocol and metric
column: the mean paired difference (a - b) with its block-bootstrap interval, the bootstrap and
Wilcoxon p-values and their Holm adjustment over the pairs of that table, and which method is
significantly better. Writes ``compare.csv`` (every number) and ``compare.md`` (one table per
dataset, protocol and metric) into the run folder. The statistics are in
:mod:`benchmark.results.statistics`; how a result table is cut into them in
:mod:`benchmark.results.significance`; which columns score a method, and in which direction, the
metric registry says (:func:`metrics.registry.compared_columns`).

Set-level values (FID, KID in ``set_metrics.csv``) are not compared here: :data:`SET_NOTE` says why
in one line, printed and written under the tables when the run has them.
"""

from __future__ import annotations

import argparse
import math

SET_NOTE = ("Set metrics (FID, KID) are not compared here: a set value has no per-frame values to pair, so a paired "
            "test needs the stored features, which compare does not read; their block-bootstrap intervals and frame "
            "counts are in set_metrics.csv and table1_sets.md.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired comparisons of a run's methods: differences, block-bootstrap intervals, p-values (Holm)",
        description="Compare the methods of a run on the same frames: the mean paired difference with its "
                    "block-bootstrap interval, a paired block-bootstrap p-value, the Wilcoxon signed-rank test on "
                    "sequence means (6 sequences or more), Holm-adjusted over the comparisons of each table.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds per_frame.csv, e.g. from cabench run or demo)")
    parser.add_argument("--metric", default=None,
                        help="a metric (all its columns) or one metric column (default: every metric column of the run)")
    parser.add_argument("--baseline", default=None, help="compare each method with this one (default: every pair)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level after Holm's correction; intervals are at 1 - alpha (default 0.05)")
    parser.add_argument("--resamples", type=resample_count, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=seed_value, default=0, help="bootstrap seed (default 0)")
    parser.set_defaults(func=run)


def resample_count(text: str) -> int:
    """``--resamples``: an integer from 2 to :data:`benchmark.results.statistics.MAX_RESAMPLES`."""
    from benchmark.results.statistics import MAX_RESAMPLES

    value = int(text)
    if not 2 <= value <= MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(f"needs 2 to {MAX_RESAMPLES:,}, got {value}")
    return value


def seed_value(text: str) -> int:
    """``--seed``: a non-negative integer (numpy's seeds)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def select_columns(per_frame, metric: str | None) -> dict[str, bool]:
    """{column: higher_is_better} of the columns that ``metric`` (a metric name or one of its columns;
    None: all) names in the run."""
    from metrics import registry
    from metrics.errors import CabenchError, InputError

    available = registry.compared_columns(per_frame.columns)
    if metric is None:
        if not available:
            raise InputError("the run has no metric columns to compare")
        return available
    if metric in available:
        return {metric: available[metric]}
    try:
        spec = registry.get(metric)
    except CabenchError:
        spec = None
    chosen = {c: higher for c, higher in available.items() if spec is not None and spec.scores(c)}
    if not chosen:
        known = ", ".join(available) or "none"
        raise InputError(f"--metric {metric}: not a metric column of this run (it has: {known})")
    return chosen


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.results.files import atomic_write_csv, atomic_write_text
    from benchmark.results.folder import refuse_links
    from benchmark.results.schema import read_run
    from benchmark.results.significance import compare_table
    from metrics.errors import InputError

    folder = Path(args.run)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such run folder")
    refuse_links(folder)  # compare.csv and .md are written into it: it must not direct them outside
    per_frame, _ = read_run(folder)
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha {args.alpha}: must be between 0 and 1")
    has_sets = (folder / "set_metrics.csv").is_file()
    try:
        columns = select_columns(per_frame, args.metric)
    except InputError as error:
        raise InputError(f"{error}. {SET_NOTE}" if has_sets else str(error)) from None
    comparisons = compare_table(per_frame, columns, baseline=args.baseline, alpha=args.alpha,
                                resamples=args.resamples, seed=args.seed)
    if comparisons.empty:
        raise InputError(f"{folder / 'per_frame.csv'}: fewer than two methods with the same frames; nothing to compare")
    markdown = render_markdown(comparisons, args.alpha, args.resamples, args.seed)
    if has_sets:
        markdown += "\n" + SET_NOTE + "\n"
    atomic_write_csv(comparisons, folder / "compare.csv")
    atomic_write_text(folder / "compare.md", markdown)
    print(markdown)
    print(f"wrote compare.csv, compare.md to {folder}")
    return 0


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}"


def _p(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def render_markdown(comparisons, alpha: float, resamples: int, seed: int) -> str:
    """One Markdown table per (dataset, protocol, metric column), with a caption saying how to read it.
    Names (methods, datasets, protocols, columns) are escaped as in table1.md (:func:`reports.tables.markdown_escape`):
    a name is text, never Markdown or HTML."""
    from metrics import registry
    from reports.tables import markdown_escape as esc

    level = f"{100 * (1 - alpha):g}%"
    lines = [
        "# Paired comparisons",
        "",
        f"Difference = mean of a − mean of b over the frames both define; {level} block-bootstrap interval "
        f"({resamples} resamples, seed {seed}). p: paired block bootstrap; p Wilcoxon: signed-rank test on "
        f"sequence means (6 sequences or more). Holm: adjusted over the pairs of one table; a difference is "
        f"significant when its Holm-adjusted bootstrap p is at most {alpha:g}.",
    ]
    for (dataset, protocol, column), table in comparisons.groupby(["dataset", "protocol", "metric"], sort=False):
        spec = registry.column_spec(column)
        arrow = f" {spec.arrow}" if spec is not None else ""
        title = " · ".join(esc(part) for part in (str(dataset), str(protocol)) if part)
        lines += ["", f"## {esc(column)}{arrow}" + (f" ({title})" if title else ""), "",
                  "| a − b | difference | interval | p | p Holm | p Wilcoxon (Holm) | frames | sequences | better |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for row in table.itertuples():
            wilcoxon = "–" if math.isnan(row.p_wilcoxon) else f"{_p(row.p_wilcoxon)} ({_p(row.p_wilcoxon_holm)})"
            better = f"**{esc(row.better)}**" if row.significant else "not significant"
            lines.append(f"| {esc(row.method_a)} − {esc(row.method_b)} | {_number(row.difference)} | "
                         f"[{_number(row.ci_low)}, {_number(row.ci_high)}] | {_p(row.p_bootstrap)} | {_p(row.p_holm)} | "
                         f"{wilcoxon} | {row.n_frames} | {row.n_sequences} | {better} |")
    return "\n".join(lines) + "\n"
