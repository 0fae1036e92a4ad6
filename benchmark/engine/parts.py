"""The parts one pair of a run must have, and the fingerprints they are stored under.

For each protocol of the run and each metric: the part's identity
(:func:`benchmark.results.fingerprint.part_identity`: versions, options, protocol, the evaluated
frames, the ground truth's and the method's content stamps, the SHA-256 of the weight files it loads)
or, where the metric cannot run under that protocol, on that input or without its weights, the reason.
A method an adapter renders also has a runtime part (``time_s``), under the method's identity.
Planning renders nothing.

What a protocol needs of the input (landmarks or a mask for imavatar's face hull, frames larger
than 160 px for nha's MS-SSIM, no mask for the full-frame protocols) is decided here, from the
ground truth's description, before any work: under ``protocol = "all"`` such a protocol's parts are
missing with the reason and its fix, while a protocol the config names itself stops the run with
that one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.config import RunConfig
from benchmark.engine.methods import Adapters, MethodSource
from benchmark.engine.plan import (
    Pair,
    landmarks_of,
    named_protocols,
    plan,
    truth_stamp,
    uses_mask,
)
from benchmark.results import fingerprint
from benchmark.results.merge import StoredPair
from benchmark.stamps import text_stamp
from metrics import registry
from metrics.errors import CabenchError
from metrics.protocols import get_protocol


@dataclass
class PairPlan:
    """A pair, its method, the frames it evaluates, and its parts (see the module docstring)."""

    pair: Pair
    method: MethodSource
    ids: list[int]
    stored: StoredPair
    identities: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)
    runtime_identity: dict[str, Any] | None = None
    weights: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # metric -> weight files it loads


def unavailable_reasons(metrics: list[str], options: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """Why each metric cannot run here (absent weights or packages), or None; checked once per run."""
    return {name: registry.get(name).unavailable_reason(options[name]) for name in metrics}


def weight_files(metrics: list[str], options: dict[str, dict[str, Any]],
                 reasons: dict[str, str | None]) -> dict[str, list[dict[str, Any]]]:
    """Per metric that can run, the weight files it loads with its options: name, file name, SHA-256 and
    whether that is the manifest's (:func:`metrics.weights.weight_records`); hashed once per run."""
    from metrics.weights import weight_records

    return {name: weight_records(registry.get(name).weight_files(options[name]))
            for name in metrics if not reasons[name]}


def plan_pair(config: RunConfig, pair: Pair, adapters: Adapters, metrics: list[str],
              options: dict[str, dict[str, Any]], protocols: list[str], truth: str, reasons: dict[str, str | None],
              weights: dict[str, list[dict[str, Any]]] | None = None) -> PairPlan:
    """The parts of ``pair``. ``adapters``: the run's (:func:`benchmark.engine.methods.open_adapters`); ``truth``: the sequence's content stamp (:func:`plan.truth_stamp`);
    ``reasons``: :func:`unavailable_reasons`; ``weights``: :func:`weight_files` (part of each part's
    identity, so that another weight file recomputes)."""
    ids = pair.sequence.split_ids(config.split)  # a sequence without splits: all its frames
    method = MethodSource(pair.method, pair.dataset.name, pair.sequence, adapters, config.align)
    method_identity = method.identity(ids)
    evaluation = {"split": config.split, "frames": text_stamp(ids), "count": len(ids), "align": sorted(config.align),
                  "mask": uses_mask(config, pair.sequence)}
    stored = StoredPair(pair.dataset.name, pair.sequence.name, pair.method.name)
    pair_plan = PairPlan(pair, method, ids, stored, weights=dict(weights or {}))
    size, has_landmarks = pair.sequence.frames.size, landmarks_of(pair.sequence, ids[:1]) is not None
    for protocol_id in protocols:
        protocol = get_protocol(protocol_id)
        for name in metrics:
            spec = registry.get(name)
            merged_options = {**spec.defaults, **options[name]}
            identity = fingerprint.part_identity(
                metric=name, metric_version=spec.version, options=merged_options, protocol=protocol.id,
                protocol_version=protocol.version, evaluation=evaluation, truth=truth, method=method_identity,
                weights=(weights or {}).get(name))
            key = (protocol.id, name)
            pair_plan.identities[key] = identity
            stored.parts[key] = fingerprint.fingerprint(identity)
            reason = (protocol.unsupported.get(name) or reasons[name]
                      or protocol.input_problem(name, size, has_landmarks, evaluation["mask"]))
            if reason:
                pair_plan.unavailable[key] = reason
    if method.renders:
        pair_plan.runtime_identity = fingerprint.runtime_identity(method_identity, ids)
        stored.runtime = fingerprint.fingerprint(pair_plan.runtime_identity)
    return pair_plan


def plan_run(config: RunConfig, adapters: Adapters, metrics: list[str], options: dict[str, dict[str, Any]],
             protocols: list[str]) -> list[PairPlan]:
    """The plans of every pair of the run, in sequence-major order; each sequence's ground truth is
    stamped once, and each method's one adapter (``adapters``) serves all its sequences."""
    reasons = unavailable_reasons(metrics, options)
    weights = weight_files(metrics, options, reasons)
    truths: dict[tuple[str, str], str] = {}
    plans = []
    for pair in plan(config):
        key = (pair.dataset.name, pair.sequence.name)
        if key not in truths:
            truths[key] = truth_stamp(config, pair.sequence, pair.sequence.split_ids(config.split))
        plans.append(plan_pair(config, pair, adapters, metrics, options, protocols, truths[key], reasons, weights))
    check_named_protocols(config, plans, metrics)
    return plans


def check_named_protocols(config: RunConfig, plans: list[PairPlan], metrics: list[str]) -> None:
    """A protocol the config names itself (not through ``all``) that cannot run on an input stops the
    run before any work, with one line naming the protocol and the sequence."""
    named = named_protocols(config)
    for pair_plan in plans:
        pair = pair_plan.pair
        for protocol_id in named:
            protocol = get_protocol(protocol_id)
            for name in metrics:
                problem = protocol.input_problem(name, pair.sequence.frames.size,
                                                 landmarks_of(pair.sequence, pair_plan.ids[:1]) is not None,
                                                 uses_mask(config, pair.sequence))
                if problem:
                    raise CabenchError(f"{pair.dataset.name}/{pair.sequence.name}: {problem}")
