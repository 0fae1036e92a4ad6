"""`cabench eval`: evaluate one or more methods' frames against a ground truth.

A one-dataset run through the same engine as ``cabench run`` (:func:`benchmark.runner.run_config`):
the ground truth (``--gt``, with ``--mask`` and ``--landmarks``) is a dataset of kind ``frames``
(:mod:`benchmark.datasets.adhoc`) and each ``--pred NAME=PATH`` a method of stored frames. So its
output folder is a run folder like any other: ``per_frame.csv`` in the one result schema,
``summary.csv``, ``missing.csv``, the tables, plots, ``report.html`` and ``config.toml`` (which
``cabench run`` reruns as is); it is checked before any work, locked, resumable, and keeps the rows
computed so far on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from benchmark.io import BATCH_SIZE

    parser = subparsers.add_parser(
        "eval",
        help="evaluate methods' frames against a ground truth",
        description="Evaluate predicted frames (folders or videos) against ground truth, frame by frame: a "
                    "one-dataset cabench run (same outputs, resumable).",
    )
    parser.add_argument("--gt", required=True, help="ground-truth frames: a folder of images or a video")
    parser.add_argument("--pred", required=True, action="append", metavar="NAME=PATH",
                        help="a method's frames; repeat for several methods (a bare PATH is named by the video's "
                             "stem or the folder's name)")
    parser.add_argument("--mask", help="folder of masks aligned with the ground truth (frame ids in the names); metrics are then computed "
                             "over the masks only (default: none, full frames)")
    parser.add_argument("--metrics", default="l2,psnr,ssim,lpips", help="comma-separated metric names (default: %(default)s)")
    parser.add_argument("--protocol", default="canonical",
                        help="evaluation protocol: canonical, imavatar, pointavatar, insta, nerface, nha, pytorch-fid, clean-fid, "
                             "clean-fid-legacy-pytorch, clean-fid-legacy-tensorflow, torch-fidelity (FID/KID), videogpt or stylegan-v "
                             "(FVD; docs/set-metrics.md) (the README's "
                             "protocol table defines them), a comma list of them, or all (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="frames per batch (default: %(default)s)")
    parser.add_argument("--align", default=None, help="alignment policy: intersect, resize, or intersect,resize (default: none; frame counts and sizes "
                             "must match)")
    parser.add_argument("--landmarks", help=".npy of the ground truth's 68 landmarks (T,68,2) in pixels (imavatar protocol; default: none)")
    parser.add_argument("--dataset", default=None,
                        help="the dataset name the rows carry (default: the ground truth's folder name or video stem)")
    parser.add_argument("--flow", default=None, help="optical-flow backend of the temporal metrics: dis, farneback, raft or raft_small (default: dis)")
    parser.add_argument("--flow-weights", default=None, help="RAFT checkpoint, torchvision or original raft-*.pth (default: looked up as cabench weights lists)")
    parser.add_argument("--flow-updates", type=int, default=None, help="RAFT flow updates (default 12)")
    parser.add_argument("--tof-crop", dest="crop", default=None, choices=("tecogan", "none"),
                        help="tof over TecoGAN's border crop (default) or the whole frame")
    parser.add_argument("--warp-variant", dest="variant", default=None, choices=("lai", "central"),
                        help="warp_error as Lai et al.'s script (default) or with central-difference motion boundaries")
    parser.add_argument("--deca-weights", default=None, help="path of deca_model.tar for deca_pe, deca_ee (default: looked up as cabench weights lists)")
    parser.add_argument("--face-region", default=None, choices=("gt", "detect"),
                        help="face metrics: locate the method's face from the ground truth's face region (gt, the "
                             "default) or detect it in the method's frame (detect: frames without a detected face drop out)")
    parser.add_argument("--face-landmarks", dest="landmarks_backend", default=None, choices=("dlib", "fan"),
                        help="landmarks of lmd, mlmd and akd: dlib's shape predictor or FAN's (face_alignment) 68 points "
                             "(default: dlib for lmd and mlmd, fan for akd)")
    parser.add_argument("--fan-weights", default=None, help="path of 2DFAN-4.pth.tar for akd and FAN landmarks (default: "
                        "looked up as cabench weights lists)")
    parser.add_argument("--syncnet-weights", default=None, help="path of syncnet_v2.model for lse_d, lse_c, av_offset "
                        "(default: looked up as cabench weights lists)")
    parser.add_argument("--lse-crop", default=None, choices=("syncnet", "frame"),
                        help="lip-sync crops: syncnet_python's face crop (default) or the whole frame (Wav2Lip's LRS scoring)")
    parser.add_argument("--lpips-net", default=None, choices=("alex", "vgg"), help="LPIPS trunk (default: alex)")
    parser.add_argument("--lpips-weights", default=None, help="path of the LPIPS trunk's torchvision state dict (default: looked up as cabench weights lists)")
    parser.add_argument("--fid-weights", default=None, help="FID/KID Inception weights in pytorch-fid's format (default: "
                        "looked up as cabench weights lists)")
    parser.add_argument("--fvd-weights", default=None, help="FVD I3D weights of the protocol's implementation: VideoGPT's "
                        "i3d_pretrained_400.pt state dict (--protocol videogpt) or StyleGAN-V's i3d_torchscript.pt "
                        "(--protocol stylegan-v); PATH, or PROTOCOL=PATH items comma-separated for both (default: looked up as "
                        "cabench weights lists)")
    parser.add_argument("--set-resamples", dest="resamples", type=int, default=None,
                        help="bootstrap resamples of the set metrics FID, KID and FVD (default 100; 0: no interval, and FID "
                             "streams its statistics)")
    parser.add_argument("--out", default="runs/eval",
                        help="output folder: absent, empty or a cabench run folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="recompute everything, ignoring stored results")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots and the HTML report")
    parser.add_argument("--strict", action="store_true", help="fail when a metric is missing (weights absent)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_named_paths(values: list[str]) -> list[tuple[str, str]]:
    from pathlib import Path

    from benchmark.datasets.adhoc import sequence_name
    from metrics.errors import CabenchError

    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep and Path(value).exists():  # a bare path: named by its video's stem or its folder's name
            name, sep, path = sequence_name(value), "=", value
        if not sep or not name or not path:
            raise CabenchError(f"--pred {value!r}: expected NAME=PATH (or the path of an existing video or folder)")
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
    if getattr(args, "landmarks_backend", None):
        options["landmarks"] = args.landmarks_backend
    for name in ("flow", "flow_weights", "flow_updates", "crop", "variant", "deca_weights", "face_region", "fid_weights", "fvd_weights",
                 "resamples", "fan_weights", "syncnet_weights", "lse_crop"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def eval_config(args: argparse.Namespace):
    """The run config of a ``cabench eval`` command line (paths absolute)."""
    from pathlib import Path

    from benchmark.align import parse_policy
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig
    from benchmark.datasets.adhoc import sequence_name
    from metrics.errors import CabenchError

    named = parse_named_paths(args.pred)
    for path in (args.gt, *(path for _, path in named), args.mask, args.landmarks):  # before the heavy imports
        if path is not None and not Path(path).exists():
            raise CabenchError(f"{Path(path).resolve()}: no such file or folder")
    methods = tuple(MethodConfig(name=name, frames=str(Path(path).resolve())) for name, path in named)
    gt = Path(args.gt).resolve()
    dataset = DatasetConfig(name=args.dataset or sequence_name(gt), path=str(gt), kind="frames",
                            mask=str(Path(args.mask).resolve()) if args.mask else None,
                            landmarks=str(Path(args.landmarks).resolve()) if args.landmarks else None)
    # names checked against the metric and protocol registries by the run (benchmark.evaluation.parse_metrics,
    # benchmark.engine.plan.protocols_of), which a run whose outputs are up to date does not load
    metrics = tuple(dict.fromkeys(name.strip() for name in args.metrics.split(",") if name.strip()))
    if not metrics:
        raise CabenchError("--metrics: no metric given")
    if not args.protocol.strip(", "):
        raise CabenchError("--protocol: no protocol given")
    return RunConfig(datasets=(dataset,), methods=methods, metrics=metrics, out=str(Path(args.out).resolve()),
                     protocol=args.protocol, device=args.device, batch_size=args.batch_size, split="all",
                     align=tuple(sorted(parse_policy(args.align))), mask=args.mask is not None,
                     options=metric_options(args)).resolved()


def run(args: argparse.Namespace) -> int:
    from metrics.errors import CabenchError

    if args.batch_size < 1:
        raise CabenchError(f"--batch-size must be at least 1, got {args.batch_size}")
    config = eval_config(args)  # the command line checked before torch and the metrics are imported
    import pandas as pd

    from benchmark.runner import run_config
    from reports.publish import publish

    log = (lambda message: None) if args.quiet else print
    report = run_config(config, force=args.force, progress=not args.quiet, shard=(0, 1), plots=not args.no_plots,
                        report=not args.no_plots, log=log, publish=publish)
    print_outcome(report, plots=not args.no_plots)
    missing = report.missing
    if report.sets is not None:
        unset = report.sets[report.sets["missing"].fillna("") != ""]
        missing = pd.concat([missing, pd.DataFrame({"metric": unset["metric"], "reason": unset["missing"]})])
    if len(missing) and args.strict:
        reasons = dict.fromkeys(f"{metric} ({reason})" for metric, reason in zip(missing["metric"], missing["reason"]))
        raise CabenchError(f"--strict: metrics missing: {'; '.join(reasons)}")
    return 0


def print_outcome(report, plots: bool) -> None:
    """What `eval` and `run` print at the end: Table 1, the other metrics' table and the set metrics'
    table (those the run has), one line per reason a metric is missing, and last the folder with the
    files it holds."""
    import pandas as pd

    out = report.out
    for name in ("table1.md", "metrics.md", "table1_sets.md", "set_metrics.md"):
        if (out / name).exists():
            print((out / name).read_text())
    missing = report.missing
    if report.sets is not None:  # set metrics (FID, KID) that could not run: their rows say why
        unset = report.sets[report.sets["missing"].fillna("") != ""]
        missing = pd.concat([missing, pd.DataFrame({"metric": unset["metric"], "reason": unset["missing"]})])
    if len(missing):
        for reason, rows in missing.groupby("reason", sort=False):
            print(f"{', '.join(dict.fromkeys(rows['metric']))}: missing ({reason})")
    tables = [stem for stem in ("table1", "table2", "metrics", "table1_sets", "set_metrics") if (out / f"{stem}.md").exists()]
    files = ["per_frame.csv", "summary.csv", "missing.csv", *([f"{'/'.join(tables)} .md .tex .csv"] if tables else []),
             *(["plots/", "report.html"] if plots else [])]
    print(f"results in {out} ({', '.join(files)})")
