"""Fingerprints of stored results: a stored part is reused only while everything its numbers depend
on is unchanged, so a rerun can never report a stale number.

A part's identity (stored beside it, in its ``.json``, so a recomputation can be explained) holds:

- ``cabench``: the installed cabench version (an upgrade recomputes everything);
- ``metric`` and ``metric_version``: the metric and its implementation version
  (``MetricSpec.version``, bumped by a change that alters its numbers), with its ``options``;
- ``protocol`` and ``protocol_version`` (``Protocol.version``);
- ``evaluation``: the split's frame ids, the alignment policies, whether masks are used;
- ``truth``: the content stamp of the ground truth's frames read (and of its masks and landmarks
  when used);
- ``weights`` (metrics that load weight files only): each file's manifest name, file name and
  SHA-256 (:func:`metrics.weights.weight_records`), so that swapping a weight file recomputes;
- ``method``: the method's settings (its adapter and settings, or its frames' path) and the
  content stamp of its frames, or, for an adapter that renders, of what rendering reads
  (``Adapter.fingerprint``), taken without rendering.

Content stamps are size + mtime_ns + a hash of each file's first and last 4 KiB
(:mod:`benchmark.stamps` says why not a full hash). Paths are stored resolved, so the
fingerprint does not depend on the working directory. The fingerprint is the SHA-256 of the
identity's canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any


def cabench_version() -> str:
    """The installed cabench's version (``source`` for a checkout that is not installed)."""
    try:
        return metadata.version("cabench")
    except metadata.PackageNotFoundError:
        return "source"


def fingerprint(identity: dict[str, Any]) -> str:
    """SHA-256 (20 hex digits) of ``identity``'s canonical JSON."""
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def part_identity(*, metric: str, metric_version: int, options: dict[str, Any], protocol: str, protocol_version: int,
                  evaluation: dict[str, Any], truth: str, method: dict[str, Any],
                  weights: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a metric part's numbers depend on (see the module docstring). ``weights`` enters the identity
    only when the metric loads weight files, so the parts of the other metrics keep their fingerprints."""
    identity = {"cabench": cabench_version(), "metric": metric, "metric_version": metric_version, "options": options,
                "protocol": protocol, "protocol_version": protocol_version, "evaluation": evaluation, "truth": truth,
                "method": method}
    if weights:
        identity["weights"] = [{k: w[k] for k in ("name", "file", "sha256")} for w in weights]
    return identity


def runtime_identity(method: dict[str, Any], frames: list[int]) -> dict[str, Any]:
    """What a method's measured time per frame depends on: the version, the method and its frames."""
    return {"cabench": cabench_version(), "runtime": True, "method": method, "frames": frames}
