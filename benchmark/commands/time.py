"""`cabench time`: per-stage, per-frame timing of the reference pipeline against the step count."""

from __future__ import annotations

import argparse


def _steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps must be comma-separated integers, got {text!r}") from None
    if not steps or any(s < 1 or s > 1000 for s in steps):
        raise argparse.ArgumentTypeError(f"--steps values must be in 1..1000, got {text!r}")
    return steps


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "time", help="time the reference pipeline per stage against the number of steps",
        description="Per-frame milliseconds of TSD, TSDM, conditions, one UNet+ControlNet step, VAE decode "
                    "and refiner, with device synchronisation, warm-up excluded. Writes times.csv (one row "
                    "per scheduler, steps and repeat) and times.png (median total against steps).",
    )
    parser.add_argument("--config", default="tiny", choices=("tiny", "sd15"))
    parser.add_argument("--checkpoint", help="time this pipeline folder instead of random weights")
    parser.add_argument("--sd-path", help="local SD 1.5 folder (sd15; default: random SD 1.5-sized weights)")
    parser.add_argument("--scheduler", default="lcm", help="lcm, ddim or ddpm; comma-separated for several")
    parser.add_argument("--steps", type=_steps, default=[1, 2, 4, 8, 10], help="e.g. 1,2,4,8,10")
    parser.add_argument("--batch", type=int, default=1, help="frames per batch")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet, ControlNet and VAE decoder")
    parser.add_argument("--refiner", help="SDXL refiner folder to time a low-strength refiner pass")
    parser.add_argument("--compare-stock", action="store_true",
                        help="also time diffusers' StableDiffusionControlNetPipeline on the same weights")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default="cabench_time", help="output folder (default: cabench_time)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metrics.device import resolve_device
    from metrics.errors import CabenchError
    from reference.schedulers import SCHEDULERS
    from reference.timing import plot_times, time_pipeline, timing_pipeline

    args.device = str(resolve_device(args.device))  # "auto" resolved, CUDA checked before the pipeline is built
    schedulers = [s.strip() for s in args.scheduler.split(",") if s.strip()]
    for s in schedulers:
        if s not in SCHEDULERS:
            raise CabenchError(f"unknown scheduler {s!r} in --scheduler; choose from {', '.join(SCHEDULERS)}")
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise CabenchError("--batch and --repeats must be >= 1 and --warmup >= 0")
    pipe = timing_pipeline(args.config, args.device, args.dtype, args.channels_last, args.compile, args.sd_path,
                           args.checkpoint)
    if args.refiner:
        pipe.load_refiner(args.refiner)
    frame = time_pipeline(pipe, schedulers, args.steps, args.batch, args.repeats, args.warmup,
                          progress=not args.quiet, compare_stock=args.compare_stock)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "times.csv", index=False)
    plot_times(frame, out / "times.png")
    med = frame.groupby(["scheduler", "steps"]).median(numeric_only=True)
    print(f"device {args.device}, {args.config}, {args.dtype}, batch {args.batch}: median ms per frame")
    columns = ["tsd", "tsdm", "unet_controlnet_step", "vae_decode", "refiner", "total"]
    columns += ["ours_controlnet", "stock_controlnet"] if args.compare_stock else []
    print(med[columns].round(2).to_string())
    print(f"wrote {out / 'times.csv'} and {out / 'times.png'}")
    return 0
