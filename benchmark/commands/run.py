"""`cabench run CONFIG`: datasets x methods x metrics from a TOML config (resumable, shardable).

Launched as several processes (``accelerate launch --multi_gpu``, or ``torchrun`` for CPU
processes, which accelerate's own launcher runs only through MPI) the (sequence, method) pairs are
split across the processes and the main process merges them. See :mod:`benchmark.runner` (the engine,
shared with ``cabench eval`` and ``demo``) and :mod:`benchmark.config`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a TOML config: datasets x methods x metrics, resumable",
        description="Evaluate every method of a TOML run config on every sequence of its datasets. Results "
                    "are stored as they are computed; a rerun reuses them. Scale out with "
                    "`accelerate launch --multi_gpu --num_processes N -m benchmark.cli run CONFIG` (GPUs) or "
                    "`torchrun --nproc_per_node N -m benchmark.cli run CONFIG` (CPU processes).",
    )
    parser.add_argument("config", help="TOML run config: tables [run] (out, protocol, device, batch_size, split, metrics, align, mask, options, bootstrap), [[datasets]] (path, name, kind, sequences, mask, landmarks, audio, audio_offset) and [[methods]] (name, adapter + settings, or frames); the README's section \"Your own runs\" documents each key")
    parser.add_argument("--out", default=None, help="output folder (default: [run] out of the config)")
    parser.add_argument("--force", action="store_true", help="recompute everything, ignoring stored results")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="run only pairs I, I+N, ... and do not merge (default: all, or accelerate's process)")
    parser.add_argument("--merge-only", action="store_true", help="only merge stored parts into the outputs")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots and the HTML report")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    from metrics.errors import CabenchError

    if value is None:
        return None
    index, sep, count = value.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise CabenchError(f"--shard {value!r}: expected I/N, e.g. 0/2") from None
    if not sep or shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise CabenchError(f"--shard {value!r}: expected I/N with 0 <= I < N")
    return shard


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.commands.eval import print_outcome
    from benchmark.engine.methods import open_config_file
    from benchmark.runner import merge_run, run_config
    from reports.publish import publish

    config, adapters = open_config_file(args.config)  # every violation at once, before any work
    if args.out:
        config = config.replace(out=str(Path(args.out).resolve()))
    log = (lambda message: None) if args.quiet else print
    if args.merge_only:
        report = merge_run(config, plots=not args.no_plots, report=not args.no_plots, publish=publish,
                           adapters=adapters)
    else:
        report = run_config(config, force=args.force, progress=not args.quiet, shard=parse_shard(args.shard),
                            plots=not args.no_plots, report=not args.no_plots, log=log, publish=publish,
                            adapters=adapters)
    if report is None:
        return 0
    print_outcome(report, plots=not args.no_plots)  # as `cabench eval` does
    return 0
