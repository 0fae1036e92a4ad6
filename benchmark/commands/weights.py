"""`cabench weights`: every weight file of the manifest, where it looked, whether it was found, whether it
is the published file (its SHA-256), and its licence; `--download NAME ...|--all` fetches files
(verified, atomic; see :mod:`metrics.download`), `--verify` re-hashes what is there.

Statuses: ``found`` (the published file: size and SHA-256 match), ``unverified`` (loads, but no
published hash to compare, or another file name), ``mismatch`` (the manifest's file name with
another SHA-256: used, never as the published file), ``unusable`` (there but it cannot be loaded:
why), ``missing`` (how to get it). A weight file never makes this command fail: only a refused or
failed download (exit 2) or a ``--verify`` that finds a mismatch (exit 1) does.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights", help="list the weight files the harness can use; download and verify them",
        description="List every weight file of the manifest (found, unverified, hash mismatch, found but unusable, "
                    "missing), download files with --download (verified against the manifest's SHA-256 before they "
                    "become visible), re-hash them with --verify. Nothing else in cabench downloads.")
    parser.add_argument("--download", nargs="+", metavar="NAME", default=[],
                        help="fetch these manifest entries (e.g. lpips-alex) into $CABENCH_WEIGHTS or the torch hub cache (default: none)")
    parser.add_argument("--all", action="store_true",
                        help="fetch every downloadable entry (licence-gated ones only with --accept-licence)")
    parser.add_argument("--accept-licence", "--accept-license", dest="accept", nargs="+", metavar="NAME", default=[],
                        help="accept the licence of these entries (needed to download e.g. syncnet-v2, arcface-buffalo-l; default: none)")
    parser.add_argument("--verify", action="store_true",
                        help="re-hash every file that is there (not the cached hash); exit 1 if one is not the published file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metrics.manifest import manifest, manifest_entry

    _load_weight_tables()
    for name in [*args.download, *args.accept]:
        manifest_entry(name)  # an unknown name is bad input: one line listing the known names
    if args.download or args.all:
        return _download(args, manifest)
    if args.verify:
        from metrics.digest import forget_weight_digests

        forget_weight_digests()
    return _list(args.verify)


def _load_weight_tables() -> None:
    """Import the modules that register the checks of their weight files (metrics, reference pipeline)."""
    import importlib

    from metrics import load_metrics

    load_metrics()
    for name in ("reference.weights",):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise


def _list(verify: bool) -> int:
    import os

    from metrics.manifest import hub_snapshot, manifest
    from metrics.weights import search_dirs, weight_status

    folders = [str(d) for d in search_dirs()]
    if not os.environ.get("CABENCH_WEIGHTS"):  # say where a user's own folder would be searched
        folders.insert(0, "$CABENCH_WEIGHTS (not set)")
    print("searched, in order: explicit paths given to a command, " + ", ".join(folders))
    bad = 0
    for row in weight_status():
        print(f"{row['status']:<10} {row['key']:<28} {row['file']}")
        if row["status"] in ("found", "unverified", "mismatch"):
            print(f"           at {row['found']}")
            print(f"           sha256 {row['sha256']}" + ("" if row["status"] == "found" else
                                                          f" (manifest: {row['expected_sha256'] or 'none published'})"))
        elif row["status"] == "unusable":
            print(f"           found but unusable: {row['reason']}")
        else:
            print(f"           missing: {row['how']}")
        if row["licence"]:
            print(f"           licence: {row['licence']}")
        bad += verify and row["status"] == "mismatch"
    for entry in manifest():
        if entry.kind != "hub":
            continue
        snapshot = hub_snapshot(entry)
        status = "found" if snapshot else "missing"
        print(f"{status:<10} {entry.name:<28} {entry.repo}@{entry.revision[:12]} (Hugging Face Hub cache)")
        print(f"           at {snapshot}" if snapshot else f"           missing: {entry.how_to_get()}")
        print(f"           licence: {entry.licence}")
    return 1 if bad else 0


def _download(args: argparse.Namespace, manifest) -> int:
    from metrics.download import WeightsDownloadError, download
    from metrics.weights import offline

    if offline():
        raise WeightsDownloadError("offline mode (CABENCH_OFFLINE or HF_HUB_OFFLINE is set): nothing is downloaded; "
                                   "unset it to download")
    if args.all:
        names = [e.name for e in manifest() if e.downloadable and (not e.acceptance or e.name in args.accept)]
        skipped = [e.name for e in manifest() if e.downloadable and e.acceptance and e.name not in args.accept]
        if skipped:
            print("not downloaded (their licence needs --accept-licence NAME): " + ", ".join(skipped))
    else:
        names = list(dict.fromkeys(args.download))
    failed = 0
    for name in names:
        try:
            path = download(name, accepted=set(args.accept), progress=not args.quiet)
        except WeightsDownloadError as error:
            print(f"cabench: error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path}")
    return 2 if failed else 0
