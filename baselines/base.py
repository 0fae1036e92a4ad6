"""The adapter interface: :class:`Adapter`, :class:`MethodOutput` and :func:`fill_path`.

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
:func:`baselines.catalogue.create_adapter` rejects unknown settings by name. Path settings may hold the placeholders
``{sequence}`` (the sequence name) and ``{root}`` (the sequence's folder).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.datasets.base import Sequence
from benchmark.io import FrameSource
from benchmark.stamps import array_stamp, text_stamp, tree_stamp
from metrics.errors import CabenchError


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


def fill_path(template: str | Path, sequence: Sequence, setting: str) -> Path:
    """Expand ``{sequence}`` and ``{root}`` in a path setting."""
    try:
        return Path(str(template).format(sequence=sequence.name, root=sequence.root or "."))
    except (KeyError, IndexError, ValueError) as error:
        raise CabenchError(f"setting {setting} = {str(template)!r}: bad placeholder ({error}); "
                           "use {sequence} or {root}") from None
