"""`cabench eval`: evaluate one or more methods' frames against a ground truth.

Writes ``per_frame.csv`` (method, frame, protocol, one column per metric), ``summary.csv``
(method, metric, protocol, mean, std, count), ``summary.md`` and ``summary.tex`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate methods' frames against a ground truth",
        description="Evaluate predicted frames (folders or videos) against ground truth, frame by frame.",
    )
    parser.add_argument("--gt", required=True, help="ground-truth frames: a folder of images or a video")
    parser.add_argument("--pred", required=True, action="append", metavar="NAME=PATH",
                        help="a method's frames; repeat for several methods")
    parser.add_argument("--mask", help="folder of masks aligned with the ground truth (frame ids in the names)")
    parser.add_argument("--metrics", default="l2,psnr,ssim,lpips", help="comma-separated metric names (default: %(default)s)")
    parser.add_argument("--protocol", default="canonical", help="evaluation protocol (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per batch (default: %(default)s)")
    parser.add_argument("--align", default=None, help="alignment policy: intersect, resize, or intersect,resize")
    parser.add_argument("--landmarks", help=".npy of the ground truth's 68 landmarks (T,68,2) in pixels (imavatar protocol)")
    parser.add_argument("--flow", default=None, help="optical-flow backend of the temporal metrics (dis, farneback, raft)")
    parser.add_argument("--flow-weights", default=None, help="RAFT checkpoint (torchvision or original raft-*.pth)")
    parser.add_argument("--flow-updates", type=int, default=None, help="RAFT flow updates (default 12)")
    parser.add_argument("--deca-weights", default=None, help="path of deca_model.tar (deca_pe, deca_ee)")
    parser.add_argument("--face-region", default=None, choices=("gt", "detect"),
                        help="face metrics: locate the method's face from the ground truth's face region (gt, the "
                             "default) or detect it in the method's frame (detect: frames without a detected face drop out)")
    parser.add_argument("--lpips-net", default=None, choices=("alex", "vgg"), help="LPIPS trunk (default: alex)")
    parser.add_argument("--lpips-weights", default=None, help="path of the LPIPS trunk's torchvision state dict")
    parser.add_argument("--out", default="runs/eval", help="output folder (default: %(default)s)")
    parser.add_argument("--strict", action="store_true", help="fail when a metric is missing (weights absent)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_named_paths(values: list[str]) -> list[tuple[str, str]]:
    from metrics.errors import CabenchError

    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise CabenchError(f"--pred {value!r}: expected NAME=PATH")
        if name in {n for n, _ in pairs}:
            raise CabenchError(f"--pred: method name {name!r} given twice")
        pairs.append((name, path))
    return pairs


def metric_options(args: argparse.Namespace) -> dict:
    options = {}
    if args.lpips_net:
        options["net"] = args.lpips_net
    if args.lpips_weights:
        options["backbone_weights"] = args.lpips_weights
    for name in ("flow", "flow_weights", "flow_updates", "deca_weights", "face_region"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from benchmark.evaluation import evaluate, parse_metrics, summarize
    from benchmark.files import atomic_write_csv, atomic_write_text
    from metrics.errors import CabenchError, InputError
    from reports.summary import summary_latex, summary_markdown

    methods = parse_named_paths(args.pred)
    names = parse_metrics(args.metrics)
    annotations = None
    if args.landmarks:
        try:
            annotations = {"landmarks": np.load(args.landmarks)}
        except (OSError, ValueError) as error:
            raise InputError(f"{args.landmarks}: cannot read landmarks ({error})") from None
    out = Path(args.out)
    options = metric_options(args)
    rows: list[pd.DataFrame] = []
    missing: dict[str, str] = {}

    def keep(method: str):
        return lambda chunk: rows.append(chunk.assign(method=method))

    try:
        for method, path in methods:
            result = evaluate(path, args.gt, metrics=names, protocol=args.protocol, mask=args.mask, device=args.device,
                              batch_size=args.batch_size, align=args.align, progress=not args.quiet,
                              annotations=annotations, on_rows=keep(method), **options)
            missing.update(result.missing)
    except CabenchError:
        if rows:
            saved = atomic_write_csv(_ordered(pd.concat(rows, ignore_index=True)), out / "per_frame.csv")
            print(f"cabench: kept the {sum(len(r) for r in rows)} rows computed before the error in {saved}", file=sys.stderr)
        raise

    per_frame = _ordered(pd.concat(rows, ignore_index=True))
    summary = summarize(per_frame, by=("method",))
    protocol = per_frame["protocol"].iloc[0]
    atomic_write_csv(per_frame, out / "per_frame.csv")
    atomic_write_csv(summary, out / "summary.csv")
    markdown = summary_markdown(summary, protocol, missing)
    atomic_write_text(out / "summary.md", markdown)
    atomic_write_text(out / "summary.tex", summary_latex(summary, protocol, missing))
    print(markdown)
    print(f"wrote {out / 'per_frame.csv'}, summary.csv, summary.md, summary.tex")
    if missing and args.strict:
        raise CabenchError(f"--strict: metrics missing: {', '.join(missing)}")
    return 0


def _ordered(frame):
    first = ["method", "frame", "protocol"]
    return frame[first + [c for c in frame.columns if c not in first]]
