"""`cabench tables --run DIR [--paper]`: Table 1 and Table 2 of a run in the paper's layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tables",
        help="Table 1 / Table 2 of a run (Markdown, LaTeX, CSV), optionally beside the paper's numbers",
        description="Write the paper's Table 1 (L2, PSNR, SSIM, LPIPS, time) and Table 2 (PE, EE) from a run's "
                    "per_frame.csv: methods in the paper's order, dataset groups, arrows, best in bold.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds per_frame.csv, e.g. from cabench run or demo)")
    parser.add_argument("--paper", action="store_true", help="put the paper's reported numbers and the difference beside")
    parser.add_argument("--out", default=None, help="where to write the tables (default: the run folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.results.files import atomic_write_text
    from benchmark.results.schema import read_run
    from benchmark.results.summary import missing_by_method, summarize
    from reports.tables import render_all

    per_frame, missing = read_run(args.run)
    summary = summarize(per_frame)
    missing = missing_by_method(missing) if len(missing) else None
    out = Path(args.out or args.run)
    files = render_all(summary, missing, paper=args.paper)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    for name in files:
        if name.endswith(".md"):
            print(files[name])
    print(f"wrote {', '.join(files)} to {out}")
    return 0
