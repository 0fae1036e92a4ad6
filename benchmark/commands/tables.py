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


def read_run(folder):
    """(per_frame, missing) of a run folder; errors name the file."""
    from pathlib import Path

    import pandas as pd

    from benchmark.files import read_csv
    from metrics.errors import InputError

    folder = Path(folder)
    path = folder / "per_frame.csv"
    if not path.exists():
        raise InputError(f"{path}: no per_frame.csv in the run folder (run cabench run or cabench demo first)")
    per_frame = read_csv(path, "result table")
    needed = {"dataset", "method", "frame", "protocol"}
    if not needed <= set(per_frame.columns):
        raise InputError(f"{path}: not a result table (needs columns {', '.join(sorted(needed))})")
    missing_path = folder / "missing.csv"
    missing = pd.read_csv(missing_path) if missing_path.exists() and missing_path.stat().st_size else None
    return per_frame, missing


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.files import atomic_write_text
    from benchmark.runner import missing_by_method, summarize_run
    from reports.tables import render_all

    per_frame, missing = read_run(args.run)
    summary = summarize_run(per_frame)
    missing = missing_by_method(missing) if missing is not None and len(missing) else None
    out = Path(args.out or args.run)
    files = render_all(summary, missing, paper=args.paper)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    for name in files:
        if name.endswith(".md"):
            print(files[name])
    print(f"wrote {', '.join(files)} to {out}")
    return 0
