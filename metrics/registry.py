"""One registry of metrics: each metric's defaults, direction, unit, needs and evaluator.

Convention (after timm / pyiqa): a metric is registered once, as a :class:`MetricSpec`, by the
module that implements it. Everything that runs metrics (``benchmark.evaluate``, ``cabench eval``,
``cabench run``) goes through :func:`create` and reads direction and unit from here, so a table
never has to guess whether lower or higher is better.

Every metric is evaluated by streaming: an :class:`Evaluator` receives aligned batches of frames
in order (:class:`Batch`) and returns, per batch, one value per frame for each of its columns.
Temporal metrics keep what they need of the previous batch (a frame, a flow), so memory never
grows with the length of the video. A frame for which a metric has no value (the first frame of
a pair metric, a frame with no detected face) gets NaN, which summaries skip and count.

What several metrics of one batch need (the method's flows, its landmarks) travels on the batch
(:meth:`Batch.share`), computed by the first metric that asks; what depends on the ground truth
alone goes through the batch's :class:`~metrics.truth.TruthStore`, computed once for every method.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from metrics.errors import CabenchError
from metrics.truth import TruthStore, content_key

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Batch:
    """Aligned frames of a prediction and its ground truth, in frame order.

    pred, gt: float tensors (N,3,H,W) in [0,1] on the evaluation device, already prepared by the
    protocol (resolution, background). mask: (N,1,H,W) in [0,1] or None. annotations: optional
    per-frame ground-truth annotations (e.g. ``"landmarks"``: (N,68,2) in pixels).
    truth: where values derived from the ground truth alone are computed once (and, with a folder,
    kept); truth_salt: what prepared ``gt`` (the protocol id and version), part of every frame's
    content key. executor: threads for per-frame work that releases the GIL (OpenCV, dlib), or
    None to run it in the calling thread.
    """

    frame_ids: list[int]
    pred: torch.Tensor
    gt: torch.Tensor
    mask: torch.Tensor | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    truth: TruthStore = field(default_factory=TruthStore)
    truth_salt: str = ""
    executor: Executor | None = field(default=None, repr=False)
    shared: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def share(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value under ``key`` for this batch, computed by the first metric that asks for it."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    def uint8(self, role: str) -> np.ndarray:
        """``pred`` or ``gt`` as (N,H,W,3) uint8 RGB (values rounded), converted once per batch."""

        def convert() -> np.ndarray:
            frames = getattr(self, role).detach().float().clamp(0, 1)  # a new tensor: the rest works in place
            array = frames.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            return np.ascontiguousarray(array)

        return self.share(("uint8", role), convert)

    @property
    def gt_keys(self) -> list[str]:
        """The content key of every ground-truth frame (see :func:`metrics.truth.content_key`)."""
        return self.share("gt_keys", lambda: [content_key(frame, self.truth_salt) for frame in self.gt])

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[function(item) for item in items]``, on the batch's threads when it has them."""
        if self.executor is None:
            return [function(item) for item in items]
        return list(self.executor.map(function, items))


class Evaluator:
    """Streams over batches; ``update`` returns {column: (N,) float64 array} for the batch."""

    columns: tuple[str, ...] = ()

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        raise NotImplementedError


@dataclass(frozen=True)
class MetricSpec:
    """Everything the harness knows of a metric, in one place (after timm / pyiqa's registries).

    factory(device=..., protocol=..., **options) builds the evaluator; ``check(options)`` returns
    None when the metric can run, else the reason it cannot (a missing weight file, a missing
    package), so that the metric is reported as missing instead of crashing the run.
    ``columns`` are the per-frame columns it writes; the first is its headline column (the one a
    table shows and a bar plot draws).

    What tables, plots and summaries read from here, so that no other module restates it:
    ``higher_is_better`` and ``unit``; ``paper_format``, the format spec its values are printed
    with (the paper's precision where the paper reports the metric: Table 2 mixes 4 and 5
    significant digits, hence ``"g"`` there); ``reference_columns``, columns that describe the input
    rather than score the method (a curve kept for plotting, the ground truth's own floor), shown
    without a direction; ``trace``, whether the headline column is drawn frame by frame;
    ``value_range``, the closed interval every finite value lies in (checked by the contract
    tests); ``kind``: ``frame``, ``temporal`` (streams over frame pairs: NaN on the first frame),
    ``face`` (NaN where no face is found; summaries state the share of frames it is defined on)
    ``runtime`` (measured while a method renders, not computed from frames: ``time_s``) or ``sequence``
    (its values need the whole sequence, given after the last batch by the evaluator's
    ``finish(audio, shared, truth)``; a stored part is recomputed from the first frame, like a temporal one).
    """

    name: str
    higher_is_better: bool
    unit: str
    description: str
    factory: Callable[..., Evaluator]
    columns: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] | None = None
    # set metrics: why the metric cannot run under a protocol with these options (None: it can)
    protocol_check: Callable[[str, dict[str, Any]], str | None] | None = None
    kind: str = "frame"  # "frame", "temporal", "face", "runtime" or "sequence"
    reference_columns: tuple[str, ...] = ()
    paper_format: str = ".4g"
    trace: bool = False
    value_range: tuple[float, float] = (-math.inf, math.inf)
    # the implementation's version: bumped whenever a change alters the numbers the metric gives for
    # the same input, so that results stored by an earlier implementation are recomputed
    version: int = 1
    # the weight files the metric loads with these (merged) options: {manifest name: explicit path or
    # None}, e.g. {"lpips-alex": options["backbone_weights"]}; their file names and SHA-256 are recorded
    # beside its numbers and in its stored parts' fingerprints (metrics.weights.weight_records)
    weights: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def headline(self) -> str:
        """The column that stands for the metric in tables and plots (its first)."""
        return self.output_columns()[0]

    def scores(self, column: str) -> bool:
        """Whether ``column`` scores the method (so higher_is_better applies to it)."""
        return column in self.output_columns() and column not in self.reference_columns

    def output_columns(self) -> tuple[str, ...]:
        return self.columns or (self.name,)

    def weight_files(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """{manifest name: explicit path or None} of the weight files it loads with ``options`` (defaults merged)."""
        return dict(self.weights({**self.defaults, **(options or {})})) if self.weights is not None else {}

    def unavailable_reason(self, options: dict[str, Any] | None = None) -> str | None:
        if self.check is None:
            return None
        merged = {**self.defaults, **(options or {})}
        return self.check(merged)


def keyword_defaults(*callables: Callable[..., Any]) -> dict[str, Any]:
    """The options the ``callables`` take, with their defaults: every parameter with a default but the
    evaluation's own (``self``, ``device``, ``protocol``, ``name``). An evaluator's keyword constructor is
    where a metric's option defaults are written, once; ``MetricSpec.defaults`` is read from it
    (``defaults=keyword_defaults(TOF, flow_config)``: TOF's own options and those it passes on)."""
    found: dict[str, Any] = {}
    for function in callables:
        for name, parameter in inspect.signature(function).parameters.items():
            if name in ("self", "device", "protocol", "name") or parameter.default is inspect.Parameter.empty:
                continue
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            found.setdefault(name, parameter.default)
    return found


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Register ``spec`` under its name (a second registration of a name is a programming error)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"metric {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> MetricSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise CabenchError(f"unknown metric {name!r}; known metrics: {known}") from None


def list_metrics() -> list[str]:
    """The metrics computed from frames (every registered name but the runtime columns), sorted."""
    _ensure_loaded()
    return sorted(name for name, spec in _REGISTRY.items() if spec.kind != "runtime")


def column_spec(column: str) -> MetricSpec | None:
    """The metric that writes per-frame ``column`` (a metric may write several columns)."""
    _ensure_loaded()
    for spec in _REGISTRY.values():
        if column in spec.output_columns():
            return spec
    return None


def compared_columns(columns: Iterable[str]) -> dict[str, bool]:
    """{column: higher_is_better} of the ``columns`` that methods are compared on: a registered
    metric's columns that score the method (not its reference columns), and not the runtime (one
    wall-time value per rendered sequence, not a per-frame measurement); in the given order."""
    found = {}
    for column in columns:
        spec = column_spec(column)
        if spec is not None and spec.kind != "runtime" and spec.scores(column):
            found[column] = spec.higher_is_better
    return found


def create(name: str, device: str | torch.device = "cpu", protocol: Any = None, **options: Any) -> Evaluator:
    """Build the evaluator of metric ``name`` with its defaults overridden by ``options``."""
    spec = get(name)
    if spec.kind == "runtime":
        raise CabenchError(f"{name} is measured while a method renders, not computed from frames; "
                           "it is not a metric to ask for")
    merged = {**spec.defaults, **options}
    return spec.factory(device=torch.device(device), protocol=protocol, **merged)


def _ensure_loaded() -> None:
    from metrics import load_metrics  # the metric modules register themselves on import

    load_metrics()
