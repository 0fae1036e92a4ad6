"""The adapter interface and its registry.

An adapter has a ``name`` (the row it fills in a results table, the paper's row name by default)
and ``outputs(sequence)``, which returns a :class:`MethodOutput`: a :class:`FrameSource` whose
frame ids are the ground truth's ids of the evaluated split (``split``, default ``"test"``),
either rendered by the method or read from outputs it stored; what the adapter had to decide to
line the frames up (a resize, a frame-rate mapping, a frame-count policy: ``alignment``), stored
beside the numbers; and, when it rendered them, the rendering time per frame it measured.
``load()`` does the work that must not be timed (loading models, checking programs); the runner
calls it before ``outputs``.

Each adapter class declares its ``role``: ``"method"`` (a competitor: a row that can be the best
of a table) or ``"sanity"`` (a check of the metrics, such as the ground truth degraded on purpose:
shown apart and never marked best). The engine records every method's role in the run folder's
``methods.csv``; stored frames named in a config are methods.

Settings come from a TOML table, so every setting is a keyword of the adapter's ``__init__``;
:func:`create_adapter` rejects unknown settings by name. Path settings may hold the placeholders
``{sequence}`` (the sequence name) and ``{root}`` (the sequence's folder).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.datasets.base import Sequence
from benchmark.io import FrameSource
from benchmark.stamps import array_stamp, text_stamp, tree_stamp
from metrics.errors import CabenchError

_REGISTRY: dict[str, type[Adapter]] = {}


@dataclass
class MethodOutput:
    """What an adapter gives back for one sequence.

    frames: the method's frames, identified by the ground truth's frame ids.
    alignment: what was done to line them up with the ground truth, and where they came from
        (JSON-serialisable; stored beside the numbers).
    seconds_per_frame: wall time of rendering per frame, measured by the adapter with its models
        already loaded; None for frames the method stored earlier (no runtime to report).
    """

    frames: FrameSource
    alignment: dict[str, Any] = field(default_factory=dict)
    seconds_per_frame: float | None = None


class Adapter:
    """Base class; subclasses set ``key`` and ``row`` and implement :meth:`outputs`."""

    key: ClassVar[str] = ""
    row: ClassVar[str] = ""
    role: ClassVar[str] = "method"  # or "sanity" (see the module docstring)
    # Settings that hold paths: a run config's relative paths are made absolute against the config's
    # folder (resolve_path_settings). Those in ``hub_settings`` may instead name a hub model id and
    # are resolved only where that path exists.
    path_settings: ClassVar[tuple[str, ...]] = ()
    hub_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str | None = None, split: str = "test"):
        self.name = name or self.row
        self.split = split

    def load(self) -> None:
        """Load what rendering needs (models, programs) so that timing excludes it; default: nothing."""

    def outputs(self, sequence: Sequence) -> MethodOutput:
        raise NotImplementedError

    def fingerprint(self, sequence: Sequence) -> str:
        """A stamp of what this adapter's frames for ``sequence`` depend on, taken without rendering:
        stored results are reused only while it is unchanged (the runner adds the settings).

        Default: the content stamp of the frames :meth:`outputs` gives, right for adapters that read
        stored outputs (listing and stamping files reads almost nothing). Adapters that render
        override it with the stamps of what rendering reads (:meth:`input_stamp`)."""
        return self.outputs(sequence).frames.content_key(self.frame_ids(sequence))

    def input_stamp(self, sequence: Sequence, files: Iterable[str | Path | None] = (),
                    annotations: Iterable[str] = ()) -> str:
        """A stamp of rendering's inputs: the sequence's frames, the named ``annotations`` and
        ``files`` (a file, or every file under a folder; ``None`` and names that are no path, such as
        a hub id, count by name)."""
        parts = [sequence.frames.content_key()]
        for key in annotations:
            values = sequence.annotations.get(key)
            parts.append(f"{key}={'-' if values is None else array_stamp(np.asarray(values))}")
        for file in files:
            parts.append(tree_stamp(file) if file is not None and Path(file).exists() else f"name:{file}")
        return text_stamp(type(self).__name__, *parts)

    def frame_ids(self, sequence: Sequence) -> list[int]:
        """The ground-truth frame ids this adapter must produce."""
        ids = sequence.split_ids(self.split)
        if not ids:
            raise CabenchError(f"{sequence.name}: split {self.split!r} has no frames")
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r})"


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make ``cls`` available as ``create_adapter(cls.key, ...)``."""
    if not cls.key:
        raise ValueError(f"{cls.__name__} has no key")
    _REGISTRY[cls.key] = cls
    return cls


def _load_all() -> None:
    import baselines.consistentavatar  # noqa: F401
    import baselines.degradations  # noqa: F401
    import baselines.diffusionrig  # noqa: F401
    import baselines.folders  # noqa: F401
    import baselines.insta  # noqa: F401
    import baselines.sadtalker  # noqa: F401


def list_adapters() -> list[str]:
    """Every registered adapter key, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def adapter_class(key: str) -> type[Adapter]:
    _load_all()
    if key not in _REGISTRY:
        raise CabenchError(f"adapter {key!r} is not known; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def adapter_parameters(cls: type[Adapter]) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Every setting of adapter ``cls``: its ``__init__`` parameter (of the class or a base) and its
    type annotation (``Any`` where there is none)."""
    parameters: dict[str, tuple[inspect.Parameter, Any]] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        hints = typing.get_type_hints(klass.__init__)
        for pname, p in inspect.signature(klass.__init__).parameters.items():
            if pname != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                parameters.setdefault(pname, (p, hints.get(pname, Any)))
    return parameters


def setting_violations(adapter_name: str, settings: dict[str, Any]) -> list[tuple[str, str]]:
    """(setting's key path, what is wrong) for every setting that is unknown, missing or of the wrong
    type for the annotation of the adapter's ``__init__`` (strict: ``"lots"`` is not a float, ``true``
    is not an integer, and a float is finite: TOML's ``nan`` and ``inf`` are refused). Values are
    checked by the adapter itself when it is built."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    from benchmark.schema import violations

    parameters = adapter_parameters(adapter_class(adapter_name))
    found: list[tuple[str, str]] = []
    for key, value in settings.items():
        if key not in parameters:
            found.append((key, f"unknown setting (known: {', '.join(sorted(parameters))})"))
            continue
        try:
            TypeAdapter(parameters[key][1], config=ConfigDict(strict=True, allow_inf_nan=False)).validate_python(value)
        except ValidationError as error:
            found += violations(error.errors(), (key,))
    found += [(name, "required, not given") for name, (p, _) in parameters.items()
              if p.default is inspect.Parameter.empty and name not in settings]
    return found


def create_adapter(adapter_name: str, **settings: Any) -> Adapter:
    """Build adapter ``adapter_name`` from its settings; unknown, missing or mistyped settings are errors."""
    cls = adapter_class(adapter_name)
    wrong = setting_violations(adapter_name, settings)
    if wrong:
        raise CabenchError(f"adapter {adapter_name!r}: " + "; ".join(f"setting {path}: {why}" for path, why in wrong))
    return cls(**settings)


def resolve_path_settings(adapter_name: str, settings: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """``settings`` with the adapter's relative path settings made absolute against ``base`` (the
    config file's folder), so that a config runs the same from any working directory and saves as
    absolute paths. Templates that start at ``{root}`` (the sequence's folder) are kept."""
    cls = adapter_class(adapter_name)
    resolved = dict(settings)
    for key in cls.path_settings:
        value = resolved.get(key)
        if not isinstance(value, str) or not value or value.startswith("{root}") or Path(value).is_absolute():
            continue
        candidate = Path(base).resolve() / value
        if key not in cls.hub_settings or candidate.exists():
            resolved[key] = str(candidate)
    return resolved


def fill_path(template: str | Path, sequence: Sequence, setting: str) -> Path:
    """Expand ``{sequence}`` and ``{root}`` in a path setting."""
    try:
        return Path(str(template).format(sequence=sequence.name, root=sequence.root or "."))
    except (KeyError, IndexError, ValueError) as error:
        raise CabenchError(f"setting {setting} = {str(template)!r}: bad placeholder ({error}); "
                           "use {sequence} or {root}") from None
