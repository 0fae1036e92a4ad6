"""A method of a run on one sequence: what its frames depend on, and the frames themselves.

A method is stored frames (``frames = "path"``, with ``{root}``, ``{sequence}``, ``{dataset}``
filled in) or an adapter (``baselines.create_adapter(adapter, **settings)``, given the run's split
and the method's name unless the settings give them). :meth:`MethodSource.identity` is what the
method's numbers depend on, taken without rendering: its settings and the content stamp of its
frames (``FrameSource.content_key``) or, for an adapter, ``Adapter.fingerprint(sequence)``.
:meth:`MethodSource.output` loads the adapter (the work that must not be timed) and gives its
frames, what was done to align them and, when it rendered them, its seconds per frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines.base import Adapter, MethodOutput
from baselines.catalogue import adapter_class, resolve_path_settings, setting_violations
from benchmark.align import refuse_extra
from benchmark.config import AdapterRules, MethodConfig, RunConfig
from benchmark.datasets.base import Sequence
from benchmark.io import FrameSource, open_frames
from benchmark.stamps import text_stamp
from metrics.errors import CabenchError


class MethodSource:
    """One method on one sequence (see the module docstring)."""

    def __init__(self, method: MethodConfig, dataset: str, sequence: Sequence, split: str,
                 align: tuple[str, ...] = ()):
        self.method = method
        self.align = align
        self.sequence = sequence
        self.adapter: Adapter | None = None
        self.path: str | None = None
        if method.frames is not None:
            fields = {"root": str(getattr(sequence, "root", "") or ""), "sequence": sequence.name, "dataset": dataset}
            try:
                self.path = method.frames.format(**fields)
            except (KeyError, IndexError, ValueError) as error:
                raise CabenchError(f"method {method.name!r}: bad placeholder {error} in frames "
                                   "(known: root, sequence, dataset)") from None
        else:
            import baselines

            settings = dict(method.settings)
            settings.setdefault("split", split)
            settings.setdefault("name", method.name)
            self.adapter = baselines.create_adapter(method.adapter, **settings)

    @property
    def renders(self) -> bool:
        """Whether the method's frames come from an adapter (which may measure a time per frame)."""
        return self.adapter is not None

    def _stored(self) -> FrameSource:
        return open_frames(str(Path(self.path).resolve()), name=self.method.name)

    def identity(self, ids: list[int]) -> dict[str, Any]:
        """The method's settings and the stamp of its frames' content for ``ids`` (no rendering)."""
        if self.adapter is None:
            source = self._stored()
            refuse_extra(source, self.sequence.frames, self.align)
            present = [i for i in ids if i in set(source.frame_ids)]
            content = text_stamp(source.frame_ids, source.content_key(present))
            return {"frames": str(Path(self.path).resolve()), "content": content}
        return {"adapter": self.method.adapter, "settings": self.method.settings,
                "content": self.adapter.fingerprint(self.sequence)}

    def output(self) -> MethodOutput:
        """The method's frames (rendered now by an adapter, after ``load()``, or read from storage)."""
        if self.adapter is None:
            return MethodOutput(self._stored(), {"frames": str(Path(self.path).resolve())})
        self.adapter.load()
        output = self.adapter.outputs(self.sequence)
        refuse_extra(output.frames, self.sequence.frames, self.align)
        return output


def method_roles(config: RunConfig) -> list[dict[str, str]]:
    """The rows of ``methods.csv``: each method of ``config`` with its role (the adapter class's
    ``role``; stored frames are methods) and its adapter (empty for stored frames)."""
    records = []
    for method in config.methods:
        role = adapter_class(method.adapter).role if method.adapter else "method"
        records.append({"method": method.name, "role": role, "adapter": method.adapter or ""})
    return records


def method_violations(method: Any, where: str) -> list[tuple[str, str]]:
    """What is wrong with the adapter of one ``[[methods]]`` entry as read from TOML (``where``: its key
    path): an unknown adapter name, unknown, missing or mistyped settings (against the annotations of
    the adapter's ``__init__``), then the values the adapter refuses when it is built."""
    import baselines

    if not isinstance(method, dict) or not isinstance(method.get("adapter"), str):
        return []  # the schema reports these
    adapter, settings = method["adapter"], method.get("settings", {})
    try:
        adapter_class(adapter)
    except CabenchError as error:
        return [(f"{where}.adapter", str(error))]
    if not isinstance(settings, dict):
        return []
    wrong = [(f"{where}.settings.{path}", why) for path, why in setting_violations(adapter, settings)]
    if not wrong:
        try:
            baselines.create_adapter(adapter, **{"name": str(method.get("name", "")), **settings})
        except CabenchError as error:
            wrong.append((f"{where}.settings", str(error)))
    return wrong


# what a run config checks of its adapter methods (benchmark.config imports no adapter: the engine gives it these)
ADAPTER_RULES = AdapterRules(violations=method_violations, resolve=resolve_path_settings)
