"""The `cabench` command line: one console script, one module per subcommand.

Each module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
parser and sets ``func`` (``func(args) -> int | None``). Command modules import their heavy
dependencies inside ``func``, so ``cabench --help`` stays fast. A :class:`CabenchError` becomes one
line on stderr and exit status 2; ``--debug`` (anywhere on the line) shows the traceback instead.
Ctrl-C (SIGINT) and SIGTERM stop a command with one line and exit status 130 and 143 (128 + the
signal's number, as shells report them); a run keeps what it stored and says so.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metrics.errors import CabenchError, Terminated

COMMAND_MODULES: tuple[str, ...] = (
    "benchmark.commands.eval",
    "benchmark.commands.weights",
    "benchmark.commands.synth",
    "benchmark.commands.run",
    "benchmark.commands.demo",
    "benchmark.commands.tables",
    "benchmark.commands.compare",
    "benchmark.commands.plots",
    "benchmark.commands.train",
    "benchmark.commands.infer",
    "benchmark.commands.time",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cabench",
        description="Evaluation and benchmarking harness for talking-head avatar generation.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    try:
        status = args.func(args)
    except CabenchError as error:
        if debug:
            raise
        print(f"cabench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if debug:
            raise
        print(f"cabench: {stop or 'interrupted'}", file=sys.stderr)
        return 130
    except Terminated as stop:
        if debug:
            raise
        print(f"cabench: {stop or 'terminated (SIGTERM)'}", file=sys.stderr)
        return 143
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
