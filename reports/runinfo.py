"""What a run's metadata (``metadata.json``, :func:`benchmark.results.schema.read_metadata`) says
under its tables and in its report: the mask and alignment policies in sentences, and which
(method, sequence) pairs were evaluated on fewer frames than their split holds.

A number computed over masks, or over 3 of 48 frames, is not the number a reader assumes; the
tables therefore carry these sentences as notes, and the report repeats them beside the run's
facts (date, version, host, libraries, datasets, protocol definitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN_PAIRS = 8  # pairs named in a note; more are counted


def shortfalls(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The (dataset, sequence, method) records evaluated on fewer frames than their split holds."""
    return [r for r in metadata.get("evaluated", []) if r.get("frames_evaluated", 0) < r.get("frames_in_split", 0)]


def policy_notes(metadata: Mapping[str, Any]) -> list[str]:
    """Sentences on the mask and alignment policies of a run (none for a run without metadata), after the
    run's own ``notes`` (e.g. what the demo's reference checkpoint is)."""
    policies = metadata.get("policies") or {}
    notes = [str(note) for note in metadata.get("notes") or []]
    if policies.get("mask"):
        masked = [f"{d['name']}/{s['name']}" for d in metadata.get("datasets", []) for s in d.get("sequences", [])
                  if s.get("mask")]
        if masked:
            notes.append("Masked: every metric is computed over the ground truth's mask only, not the full frame "
                         f"(mask = true / --mask), on {', '.join(masked)}.")
        else:
            notes.append("mask = true was asked for, but no sequence has masks: full frames were evaluated.")
    short = shortfalls(metadata)
    align = policies.get("align") or []
    if align or short:
        text = f"Alignment policy: {', '.join(align) or 'none'}."
        if short:
            named = [f"{r['method']} on {r['dataset']}/{r['sequence']}: {r['frames_evaluated']} of "
                     f"{r['frames_in_split']} frames" for r in short[:SHOWN_PAIRS]]
            more = f", and {len(short) - SHOWN_PAIRS} more pairs" if len(short) > SHOWN_PAIRS else ""
            text += f" Evaluated on fewer frames than the split holds: {'; '.join(named)}{more}."
        else:
            text += " Every method was evaluated on every frame of the split."
        notes.append(text)
    return notes


def missing_notes(missing, methods: list[str] | None = None) -> list[str]:
    """The missing-metric records (``missing.csv`` rows) as sentences, one per reason and set of rows:
    metrics sharing both are named together, and rows that are every method of the run (``methods``;
    default: those the records name) are said once, "all methods"."""
    if missing is None or not len(missing):
        return []
    everyone = set(methods if methods is not None else map(str, missing["method"]))
    notes = []
    for reason, rows in missing.groupby("reason", sort=False):
        groups: dict[tuple[str, ...], list[str]] = {}
        for metric, records in rows.groupby("metric", sort=False):
            where = tuple(dict.fromkeys(f"{d}/{m}" for d, m in zip(records["dataset"], records["method"])))
            covers_all = set(map(str, records["method"])) >= everyone
            groups.setdefault(("all methods",) if covers_all else where, []).append(str(metric))
        for where, metrics in groups.items():
            notes.append(f"{', '.join(metrics)}: missing ({reason}) for {', '.join(where)}")
    return notes
