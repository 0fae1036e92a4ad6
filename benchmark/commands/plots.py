"""`cabench plots`: a run's plots (--run DIR) and time against steps (--timing DIR of cabench time)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plots",
        help="plots of a run (temporal curves, bars, traces) or of cabench time (time against steps)",
        description="Draw PNG plots: --run DIR gives temporal curves, per-metric bars with the confidence interval "
                    "of each mean and per-frame traces; --timing DIR (or CSV) gives time per frame against steps per "
                    "scheduler and stage.",
    )
    parser.add_argument("--run", default=None, help="run folder holding per_frame.csv (default: none)")
    parser.add_argument("--rolling", type=_frames, default=None, metavar="FRAMES",
                        help="shade each trace with the interval of its rolling mean over FRAMES frames (with --run; "
                             "default: no bands)")
    parser.add_argument("--timing", default=None, help="folder (or CSV) written by cabench time (default: none)")
    parser.add_argument("--quality", default=None,
                        help="CSV with columns scheduler, steps and a metric column, drawn beside time (with --timing; "
                             "default: none)")
    parser.add_argument("--metric", default="psnr", help="the --quality column to draw (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/plots or the timing folder)")
    parser.set_defaults(func=run)


def _frames(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 frames, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.results.files import read_csv
    from metrics.errors import CabenchError, InputError
    from reports import plots

    if not args.run and not args.timing:
        raise CabenchError("plots: give --run DIR or --timing DIR")
    files = []
    if args.run:
        from benchmark.results.bootstrap import saved_settings
        from benchmark.results.folder import refuse_links
        from benchmark.results.schema import read_methods, read_run
        from benchmark.results.summary import summarize

        if args.out is None:
            refuse_links(args.run)  # plots/ of a received run folder must not lead outside it
        bootstrap = saved_settings(args.run)
        per_frame, _ = read_run(args.run)
        roles = read_methods(args.run)
        out = Path(args.out or Path(args.run) / "plots")
        summary = summarize(per_frame, bootstrap=bootstrap)
        files += plots.draw_run(per_frame, summary, out, roles, methods=list(roles) or None, rolling=args.rolling,
                                level=bootstrap.level)
    if args.timing:
        timing_path = plots.timing_csv(args.timing)
        frame = plots.read_timing(timing_path)
        out = Path(args.out or timing_path.parent)
        files += plots.timing_plot(frame, out)
        if args.quality:
            quality = read_csv(args.quality, "quality CSV")
            if not {"scheduler", "steps", args.metric} <= set(quality.columns):
                raise InputError(f"{args.quality}: needs columns scheduler, steps and {args.metric}")
            files += plots.quality_steps_plot(frame, quality, args.metric, out)
    for path in files:
        print(path)
    return 0
