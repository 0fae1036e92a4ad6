"""`cabench tables --run DIR [--paper] [--per-sequence] [--ci [pm|bounds]] [--protocols]`: the tables of a run.

Table 1 and Table 2 in the paper's layout (and the run's other metrics), the best value bold and a
dagger on the values not significantly worse than it, sanity checks apart (the run's
``methods.csv``), the run's mask and alignment policies under each table (its ``metadata.json``);
``--per-sequence`` gives a row per sequence (subject) instead of per dataset; ``--ci`` adds each
value's block-bootstrap interval (``pm``: ``mean ± half-width``, the default; ``bounds``:
``mean [low, high]``); ``--protocols`` also writes the protocol matrix (each protocol's ranking of
the methods and the Kendall tau between protocols' rankings). The bootstrap settings are the run's
(``[run] bootstrap`` of its ``config.toml``) unless ``--resamples``, ``--seed`` or ``--level`` say
otherwise.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from benchmark.commands.compare import resample_count

    parser = subparsers.add_parser(
        "tables",
        help="Table 1 / Table 2 of a run (Markdown, LaTeX, CSV) with intervals and marks, the protocol matrix",
        description="Write the paper's Table 1 (L2, PSNR, SSIM, LPIPS, time) and Table 2 (PE, EE) from a run's "
                    "per_frame.csv: methods in the paper's order, dataset groups, arrows, best in bold, a dagger on "
                    "the values not significantly worse than the best (paired block bootstrap, Holm), sanity checks "
                    "apart, the run's mask and alignment policies under each table.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds per_frame.csv, e.g. from cabench run or demo)")
    parser.add_argument("--paper", action="store_true", help="put the paper's reported numbers and the difference beside")
    parser.add_argument("--per-sequence", action="store_true",
                        help="a row per sequence (subject) instead of per dataset: table1_per_sequence.md, ...")
    parser.add_argument("--ci", nargs="?", const="pm", default=None, choices=("pm", "bounds"),
                        help="show each value's block-bootstrap interval: pm = mean ± half-width (the default when "
                             "given alone), bounds = mean [low, high] (default: no intervals)")
    parser.add_argument("--protocols", action="store_true",
                        help="also write the protocol matrix (protocols.md/.csv): each protocol's ranking of the "
                             "methods and the Kendall tau between protocols' rankings, per metric")
    parser.add_argument("--resamples", type=resample_count, default=None,
                        help="bootstrap resamples (default: the run's [run] bootstrap, else 2000)")
    parser.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the run's, else 0)")
    parser.add_argument("--level", type=float, default=None,
                        help="interval level; marks test at 1 - level (default: the run's, else 0.95)")
    parser.add_argument("--out", default=None, help="where to write the tables (default: the run folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.results.bootstrap import saved_settings
    from benchmark.results.files import atomic_write_text
    from benchmark.results.folder import refuse_links
    from benchmark.results.schema import read_metadata, read_methods, read_run
    from benchmark.results.summary import missing_by_method, summarize
    from reports import matrix
    from reports.publish import table_files
    from reports.runinfo import policy_notes

    if args.out is None:
        refuse_links(args.run)  # a received run folder must not direct the tables' writes outside it
    bootstrap = saved_settings(args.run).overridden(args.resamples, args.seed, args.level)
    per_frame, missing = read_run(args.run)
    roles = read_methods(args.run)
    by = ("dataset", "sequence", "method") if args.per_sequence else ("dataset", "method")
    summary = summarize(per_frame, by=by, bootstrap=bootstrap)
    if not args.per_sequence:
        missing = missing_by_method(missing)
    out = Path(args.out or args.run)
    files, _ = table_files(per_frame, summary, missing if len(missing) else None, roles, bootstrap,
                           policy_notes(read_metadata(args.run)), ci=args.ci, paper=args.paper)
    if args.protocols:
        per_dataset = summarize(per_frame, bootstrap=bootstrap) if args.per_sequence else summary
        files.update(matrix.render_files(per_dataset, roles))
    for name, text in files.items():
        atomic_write_text(out / name, text)
    for name in files:
        if name.endswith(".md"):
            print(files[name])
    print(f"wrote {', '.join(files)} to {out}")
    return 0
