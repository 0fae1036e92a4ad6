"""`cabench weights`: every weight file the harness can use, where it looked, whether it was found
and, when found, whether it loads and fits its model ("found but unusable: why")."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list the weight files the harness can use and whether they are found")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metrics import load_metrics
    from metrics.weights import search_dirs, weight_status

    load_metrics()  # the metric modules register their weight files

    _load_optional_weight_tables()
    print("searched, in order: explicit paths given to a command, " + ", ".join(str(d) for d in search_dirs()))
    for row in weight_status():
        print(f"{row['status']:<8} {row['file']:<34} {row['used_by']}")
        if row["status"] == "found":
            print(f"         at {row['found']}")
        elif row["status"] == "unusable":
            print(f"         found but unusable: {row['found']}: {row['reason']}")
        else:
            print(f"         source: {row['source']}")
    return 0


def _load_optional_weight_tables() -> None:
    """Import the packages that register weight files of their own (reference pipeline, baselines)."""
    import importlib

    for name in ("reference.weights",):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
