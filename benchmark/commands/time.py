"""`cabench time`: per-stage, per-frame timing of the reference pipeline against the step count.

Times are milliseconds per frame (columns ``*_ms`` of ``times.csv``). Thread policy: on a CPU the
timing runs on ``--threads`` threads, 1 unless asked otherwise, so that timings on a shared or a
different machine compare; on CUDA torch's own setting is kept unless ``--threads`` is given. The
thread count, device and the 1-minute load average are recorded in every row and printed, with a
warning when the load leaves fewer idle cores than the timing's threads.

``--lcm-lora on|off|both``: LCM samples with the checkpoint's LCM-LoRA (on, the pipeline's default),
without it (off: the undistilled weights under the LCM sampler) or both, the LoRA-off rows named
"lcm (LoRA off)" (column ``lora`` of ``times.csv``; other samplers never use the LoRA: "off").

``--quality DATA`` (with ``--checkpoint``): for every timed (scheduler, lora, steps), the held-out
(test) frames of every sequence of the dataset DATA are rendered as the ``consistentavatar`` adapter
renders them and scored with ``cabench eval``'s PSNR and SSIM (:mod:`benchmark.sweep`); writes
``quality.csv`` (per frame), ``sweep.csv`` and ``sweep.md`` (per row: median ms per frame, mean PSNR
and SSIM with their 95% block-bootstrap intervals over frames, and for LCM with the LoRA the paired
difference to LCM without it) and ``sweep.png`` (PSNR against ms per frame), and prints the table.
The quality renders use the timing's device, dtype and ``--batch``, at the dataset's frame size
(``--size``, ``--channels-last`` and ``--compile`` apply to the timing only).
"""

from __future__ import annotations

import argparse

LCM_LORA = {"on": ("on",), "off": ("off",), "both": ("on", "off")}  # --lcm-lora -> the settings LCM is run with


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
        description="Milliseconds per frame of TSD, TSDM, conditions, FCSD steps, VAE decode and refiner, with "
                    "device synchronisation, warm-up excluded. Writes times.csv (one row per scheduler, steps and "
                    "repeat) and timing_steps.png, and prints min/median/max over the repeats.",
    )
    parser.add_argument("--config", default="tiny", choices=("tiny", "sd15"), help="model configuration (default: %(default)s)")
    parser.add_argument("--checkpoint", help="time this pipeline folder ('tiny': the shipped one) instead of random "
                                             "weights (default: none, random weights)")
    parser.add_argument("--sd-path", help="local SD 1.5 folder (sd15; default: random SD 1.5-sized weights)")
    parser.add_argument("--scheduler", default="lcm",
                        help="sampler (lcm, ddim, ddpm, euler, euler_a, dpmpp, unipc); comma-separated for several (default: %(default)s)")
    parser.add_argument("--steps", type=_steps, default=[1, 2, 4, 8, 10], help="comma-separated step counts (default: 1,2,4,8,10)")
    parser.add_argument("--batch", type=int, default=8, help="frames rendered together (times are per frame) (default: %(default)s)")
    parser.add_argument("--size", type=int, default=None, help="frame size in px (default: the model's resolution)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="model dtype (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N or auto (CUDA when available) (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on a CPU; torch's own setting on CUDA)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last UNets, ControlNet and VAE "
                                                                     "(both sides of --compare-stock)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the UNets, ControlNet and VAE decoder (both sides of --compare-stock)")
    parser.add_argument("--refiner", help="SDXL refiner folder to time a low-strength refiner pass (default: none, no refiner)")
    parser.add_argument("--compare-stock", action="store_true",
                        help="also time diffusers' stock pipelines on the same weights and seeds, called frame by "
                             "frame and given the same batch in one call")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per scheduler and step count (default: %(default)s)")
    parser.add_argument("--lcm-lora", default="on", choices=("on", "off", "both"),
                        help="LCM with the checkpoint's LCM-LoRA (on), without it (off: the undistilled weights) or "
                             "both (adds rows 'lcm (LoRA off)') (default: %(default)s)")
    parser.add_argument("--quality", metavar="DATA",
                        help="also render the test frames of the dataset DATA (a cabench synth sequence or a folder of "
                             "them) at every scheduler and step count, as the consistentavatar adapter does, and write "
                             "their PSNR and SSIM beside the time: quality.csv, sweep.csv, sweep.md, sweep.png (needs "
                             "--checkpoint) (default: none, timing only)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the repeats (default: %(default)s)")
    parser.add_argument("--out", default="cabench_time", help="output folder (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from metrics.errors import CabenchError
    from reference.render import resolve_device

    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise CabenchError("--batch and --repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise CabenchError(f"--threads must be >= 1, got {args.threads}")
    if args.size is not None and args.size < 8:
        raise CabenchError(f"--size must be at least 8 px, got {args.size}")
    if args.quality and not args.checkpoint:
        raise CabenchError("--quality needs --checkpoint (random weights have no quality to measure)")
    if args.quality and args.refiner:
        raise CabenchError("--quality renders without the refiner pass; drop --refiner")
    device = resolve_device(args.device, "--device")  # CUDA checked before the pipeline is built
    threads = args.threads or (1 if device.type == "cpu" else torch.get_num_threads())
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _time(args, device, threads)
    finally:
        torch.set_num_threads(previous)


def _time(args: argparse.Namespace, device, threads: int) -> int:
    from pathlib import Path

    from benchmark.results.files import atomic_write_csv
    from benchmark.sweep import load_inputs
    from metrics.errors import CabenchError
    from reference.lcm import has_lcm_lora
    from reference.schedulers import SCHEDULERS
    from reference.timing import load_warning, speedups, time_pipeline, timing_pipeline
    from reports.plots import timing_plot

    schedulers = [s.strip() for s in args.scheduler.split(",") if s.strip()]
    for s in schedulers:
        if s not in SCHEDULERS:
            raise CabenchError(f"unknown scheduler {s!r} in --scheduler; choose from {', '.join(SCHEDULERS)}")
    if args.lcm_lora != "on" and "lcm" not in schedulers:
        raise CabenchError(f"--lcm-lora {args.lcm_lora} switches the LCM-LoRA of lcm; add lcm to --scheduler")
    inputs = load_inputs(args.quality, args.checkpoint) if args.quality else None  # before the pipeline is built
    warnings = [load_warning(threads)]
    pipe = timing_pipeline(args.config, str(device), args.dtype, args.channels_last, args.compile, args.sd_path,
                           args.checkpoint)
    if args.lcm_lora != "on" and not (has_lcm_lora(pipe.unet) or has_lcm_lora(pipe.tsdm_unet)):
        raise CabenchError(f"--lcm-lora {args.lcm_lora}: {args.checkpoint or 'the ' + args.config + ' random weights'} "
                           "has no LCM-LoRA to switch off")
    size = args.size or int(pipe.vae.config.sample_size)
    if size % pipe.vae_scale_factor:
        raise CabenchError(f"--size {size} must be a multiple of {pipe.vae_scale_factor}")
    if args.refiner:
        pipe.load_refiner(args.refiner)
    frame = time_pipeline(pipe, schedulers, args.steps, args.batch, args.repeats, args.warmup,
                          progress=not args.quiet, compare_stock=args.compare_stock, size=size,
                          lcm_lora=LCM_LORA[args.lcm_lora])
    del pipe  # the quality renders load the pipeline as the adapter does
    frame.insert(0, "config", args.checkpoint or args.config)
    warnings.append(load_warning(threads, own_load=threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(frame, out / "times.csv")
    plots = timing_plot(frame, out)

    print(f"{args.checkpoint or args.config} at {size} px, {args.dtype}, batch {args.batch}, device {device}, "
          f"{threads} thread(s), {args.repeats} repeats: milliseconds per frame")
    grouped = frame.groupby(["scheduler", "steps"] if args.lcm_lora == "on" else ["scheduler", "lora", "steps"])
    stages = [c for c in ("constants_ms", "tsd_ms", "tsdm_ms", "conditions_ms", "fcsd_step_ms", "vae_decode_ms", "refiner_ms")
              if c in frame and (c != "refiner_ms" or frame[c].any())]
    table = grouped[stages].median().round(2)
    table["total min"] = grouped["total_ms"].min().round(2)
    table["total median"] = grouped["total_ms"].median().round(2)
    table["total max"] = grouped["total_ms"].max().round(2)
    print(table.to_string())
    if args.compare_stock:
        ratios = speedups(frame)
        print("\nagainst diffusers' stock pipelines, called per frame and given the same batch in one call "
              "(median ms per frame; speed-up = stock / ours):")
        print(ratios.round(2).to_string(index=False))
    written = [out / "times.csv"]
    if inputs is not None:
        written += _quality(args, device, frame, inputs, out)
    warning = next(filter(None, warnings), None)  # before the timing, else after it
    if warning:
        print(f"warning: {warning}")
    print(f"wrote {', '.join(str(p) for p in [*written, *plots])}")
    return 0


def _quality(args: argparse.Namespace, device, frame, inputs, out) -> list:
    """Render and score every timed (scheduler, lora, steps); write and print the sweep table."""
    from benchmark.results.files import atomic_write_csv, atomic_write_text
    from benchmark.results.sweep import sweep_table
    from benchmark.sweep import render_rows
    from reports.plots import sweep_plot
    from reports.sweep import display_table, markdown

    rows = list(dict.fromkeys(zip(frame["scheduler"], frame["lora"], frame["steps"].astype(int))))
    quality = render_rows(args.checkpoint, inputs, rows, device=str(device), dtype=args.dtype,
                          batch_size=args.batch, progress=not args.quiet)
    table = sweep_table(frame, quality)
    shown = display_table(table)
    files = [atomic_write_csv(quality, out / "quality.csv"), atomic_write_csv(table, out / "sweep.csv"),
             atomic_write_text(out / "sweep.md", markdown(shown))]
    files += sweep_plot(table, out)
    frames = sorted({len(i.ids) for i in inputs})
    print(f"\nquality of the test frames ({len(inputs)} sequence(s), {'/'.join(map(str, frames))} frames each), "
          f"mean over frames with the 95% block-bootstrap interval; Δ: paired difference with the LoRA minus without:")
    print(shown.to_string(index=False))
    return files
