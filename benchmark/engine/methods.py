"""The methods of a run: their adapters checked, resolved and built once, and each method's frames on
one sequence.

A method is stored frames (``frames = "path"``, with ``{root}``, ``{sequence}``, ``{dataset}``
filled in) or an adapter (``baselines.create_adapter(adapter, **settings)``, given the run's split
and the method's name unless the settings give them). The config (:mod:`benchmark.config`) knows
nothing of adapters; here, before any work, :func:`open_config` (a TOML document) or
:func:`open_adapters` (a config made in code) check each adapter method's settings (an unknown
adapter, unknown, missing or mistyped settings, then the values the adapter refuses when it is
built), make its path settings absolute (against the config file's folder, or the working
directory) and build it, once per method: every sequence of the run uses that one adapter. Every
violation is one line with its key path, reported with the schema's.

:meth:`MethodSource.identity` is what the method's numbers depend on, taken without rendering: its
settings and the content stamp of its frames (``FrameSource.content_key``) or, for an adapter,
``Adapter.fingerprint(sequence)``. :meth:`MethodSource.output` loads the adapter (the work that must
not be timed) and gives its frames, what was done to align them and, when it rendered them, its
seconds per frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baselines.base import Adapter, MethodOutput
from baselines.catalogue import adapter_class, create_adapter, resolve_path_settings, setting_violations
from benchmark.align import refuse_extra
from benchmark.config import MethodConfig, RunConfig, config_violations, read_toml, violation_error
from benchmark.config_errors import key_path
from benchmark.datasets.base import Sequence
from benchmark.io import FrameSource, open_frames
from benchmark.stamps import text_stamp
from metrics.errors import CabenchError

Adapters = dict[str, Adapter]  # method name -> its adapter (built once, for every sequence of the run)


def _adapter_of(method: Any, where: str, base: Path, split: str
                ) -> tuple[dict[str, Any] | None, Adapter | None, list[tuple[str, str]]]:
    """One ``[[methods]]`` entry (as read from TOML, or dumped from a config): its settings with the
    adapter's path settings made absolute against ``base``, the adapter built from them, and what is
    wrong (``where``: the entry's key path). (None, None, []) for an entry that is not an adapter's,
    or whose shape the schema reports."""
    if not isinstance(method, Mapping) or not isinstance(method.get("adapter"), str):
        return None, None, []
    name, settings = method["adapter"], method.get("settings", {})
    try:
        adapter_class(name)
    except CabenchError as error:
        return None, None, [(f"{where}.adapter", str(error))]
    if not isinstance(settings, Mapping):
        return None, None, []
    settings = resolve_path_settings(name, dict(settings), base)
    wrong = [(f"{where}.settings.{path}", why) for path, why in setting_violations(name, settings)]
    if wrong:
        return settings, None, wrong
    try:
        adapter = create_adapter(name, **{"split": split, "name": str(method.get("name", "")), **settings})
    except CabenchError as error:
        return settings, None, [(f"{where}.settings", str(error))]
    return settings, adapter, []


def _adapters_of(methods: Any, base: Path, split: str
                 ) -> tuple[dict[int, dict[str, Any]], Adapters, list[tuple[str, str]]]:
    """Every adapter entry of ``methods``: {index: resolved settings}, {method name: adapter}, violations."""
    settings: dict[int, dict[str, Any]] = {}
    adapters: Adapters = {}
    wrong: list[tuple[str, str]] = []
    for i, method in enumerate(methods if isinstance(methods, (list, tuple)) else []):
        resolved, adapter, found = _adapter_of(method, key_path(("methods", i)), base, split)
        wrong += found
        if resolved is not None:
            settings[i] = resolved
        if adapter is not None:
            adapters[str(method["name"])] = adapter
    return settings, adapters, wrong


def _with_settings(config: RunConfig, settings: dict[int, dict[str, Any]]) -> RunConfig:
    methods = tuple(method.replace(settings=settings[i]) if i in settings else method
                    for i, method in enumerate(config.methods))
    return config.replace(methods=methods)


def open_config(data: Any, base: str | os.PathLike = ".", source: str = "config") -> tuple[RunConfig, Adapters]:
    """The config of a parsed TOML document and its adapters: the schema (:mod:`benchmark.config`) and
    every adapter method's settings checked in one pass, relative paths (the adapters' path settings
    included) resolved against ``base``, each adapter built once.

    Raises:
        CabenchError: one line per violation, each naming ``source``, the key path and what is wrong.
    """
    base = Path(base).resolve()
    config, wrong = config_violations(data, base)
    run = data.get("run") if isinstance(data, Mapping) else None
    split = config.split if config else run.get("split", "test") if isinstance(run, Mapping) else "test"
    settings, adapters, found = _adapters_of(data.get("methods") if isinstance(data, Mapping) else None, base,
                                             split if isinstance(split, str) else "test")
    if wrong or found:
        raise violation_error(wrong + found, source)
    return _with_settings(config, settings), adapters


def open_config_file(path: str | os.PathLike) -> tuple[RunConfig, Adapters]:
    """:func:`open_config` of a TOML file, its paths relative to the file's folder (errors name the file)."""
    return open_config(read_toml(path), base=Path(path).parent, source=str(path))


def open_adapters(config: RunConfig, source: str = "config") -> tuple[RunConfig, Adapters]:
    """``config`` with every path absolute against the working directory (:meth:`RunConfig.resolved`, and
    the adapters' path settings), and its adapters, each checked and built once (see :func:`open_config`);
    the paths of a loaded config are absolute already."""
    config = config.resolved()
    settings, adapters, wrong = _adapters_of([m.model_dump() for m in config.methods], Path.cwd(), config.split)
    if wrong:
        raise violation_error(wrong, source)
    return _with_settings(config, settings), adapters


class MethodSource:
    """One method on one sequence (see the module docstring)."""

    def __init__(self, method: MethodConfig, dataset: str, sequence: Sequence, adapters: Adapters,
                 align: tuple[str, ...] = ()):
        """``adapters``: the run's, by method name (:func:`open_adapters`); a method of stored frames has none."""
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
            self.adapter = adapters[method.name]

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
