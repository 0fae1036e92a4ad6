"""`cabench demo [--out DIR]`: the synthetic benchmark end to end, offline, on a CPU (see benchmark.demo)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole benchmark offline on the synthetic dataset: tables, plots, report.html",
        description="Make the synthetic dataset, evaluate the stage-1 proxy, the synthetic degradations and every "
                    "method this installation runs offline with every available metric, and write Table 1/2, "
                    "per_frame.csv, summary.csv, plots and report.html.",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: 64; the test split is the last quarter)")
    parser.add_argument("--size", type=int, default=None, help="frame side in pixels (default: 128)")
    parser.add_argument("--sequences", type=int, default=None, help="number of sequences (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic motion (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="recompute every stored number")
    parser.add_argument("--no-train-frames", action="store_true",
                        help="skip scoring the reference rows on the training frames (heldout_vs_train.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark import demo
    from reports.publish import publish

    report = demo.run_demo(out=args.out, frames=args.frames or demo.DEMO_FRAMES, size=args.size or demo.DEMO_SIZE,
                           sequences=args.sequences or demo.DEMO_SEQUENCES, seed=args.seed, device=args.device,
                           force=args.force, progress=not args.quiet, log=(lambda m: None) if args.quiet else print,
                           publish=publish, train_frames=not args.no_train_frames)
    for name in ("table1.md", "metrics.md", "heldout_vs_train.md", "paired.md"):  # Table 1 and the headline column of every other metric
        if (report.out / name).exists():
            print((report.out / name).read_text())
    if len(report.missing):
        for (metric, reason), _ in report.missing.groupby(["metric", "reason"], sort=False):
            print(f"{metric}: missing ({reason})")
    print(f"\nreport: {(report.out / 'report.html').resolve()}")
    return 0
