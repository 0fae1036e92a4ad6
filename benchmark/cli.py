"""The `cabench` command line: one console script, one module per subcommand.

Each module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
parser and sets ``func`` (``func(args) -> int | None``). Command modules import their heavy
dependencies inside ``func``, so ``cabench --help`` stays fast. A :class:`CabenchError` becomes one
line on stderr and exit status 2; so does an OSError (a folder that cannot be listed, a file that
cannot be written), named by its path. ``--debug`` (anywhere on the line) shows the traceback
instead, and the warnings of the libraries underneath (torchvision, FFmpeg through OpenCV), which
are otherwise silenced so that nothing prints before cabench's own line. A ``--device`` option is
checked (:func:`metrics.device.check_device`) before the command runs. Ctrl-C (SIGINT) and SIGTERM
stop a command with one line and exit status 130 and 143 (128 + the signal's number, as shells
report them); a run keeps what it stored and says so.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from benchmark.allocator import cap_malloc_arenas
from benchmark.engine.signals import terminate_as_exception
from metrics.device import check_device
from metrics.errors import CabenchError, CabenchWarning, Terminated

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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """cabench's own warnings as one line each (without --debug, the only warnings not ignored)."""
    print(f"cabench: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command. SIGTERM raises :class:`Terminated` from this function's first line on, and
    Ctrl-C's KeyboardInterrupt is caught from there too, so a signal during start-up (the imports of
    the command modules and of the command's libraries) also gives one line and 130 / 143."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    cap_malloc_arenas()  # before torch, OpenCV or a thread exists: bounded allocator memory under load
    try:
        with terminate_as_exception():
            return _main(argv)
    except KeyboardInterrupt as stop:
        if debug:
            raise
        print(f"cabench: {str(stop) or 'interrupted'}", file=sys.stderr)
        return 130
    except Terminated as stop:
        if debug:
            raise
        print(f"cabench: {str(stop) or 'terminated (SIGTERM)'}", file=sys.stderr)
        return 143


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    with warnings.catch_warnings():
        if not debug:  # library warnings (torchvision, FFmpeg through OpenCV) would print before cabench's own line
            warnings.simplefilter("ignore")
            warnings.filterwarnings("always", category=CabenchWarning)  # cabench's own: one line each
            warnings.showwarning = _show_warning
        try:
            if getattr(args, "device", None) is not None:
                check_device(args.device)
            status = args.func(args)
        except CabenchError as error:
            if debug:
                raise
            for line in str(error).splitlines() or [""]:  # several problems (a config's violations): a line each
                print(f"cabench: error: {line}", file=sys.stderr)
            return 2
        except OSError as error:  # a file or folder the system refused (permissions, a full disk, a vanished path)
            if debug:
                raise
            print(f"cabench: error: {os_error_line(error)}", file=sys.stderr)
            return 2
    return int(status or 0)


def os_error_line(error: OSError) -> str:
    """One line for an OSError: the path(s) it names and the system's reason."""
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    reason = error.strerror or str(error)
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


if __name__ == "__main__":
    sys.exit(main())
