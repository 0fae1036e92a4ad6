"""Run configs (TOML): which datasets, sequences, methods and metrics a run crosses, and how.

A config file looks like::

    [run]
    out = "runs/insta"          # output folder (relative paths: relative to the config file)
    protocol = "canonical"      # evaluation protocol id recorded beside every number; a list of
                                # ids or "all" evaluates the same outputs under each of them
    device = "cpu"              # "cpu", "cuda", "cuda:N" or "auto" (the accelerate process's device)
    batch_size = 8
    split = "test"              # frames of each sequence to evaluate: "test", "train", "val" or "all"
    metrics = ["l2", "psnr", "ssim", "lpips"]
    align = []                  # [] (mismatch is an error), ["intersect"], ["resize"]
    mask = false                # true: metrics over the dataset's masks (default: the full frame)
    bootstrap = { resamples = 2000, seed = 0, level = 0.95 }  # the intervals and marks of summaries and tables

    [run.options]               # metric options (given to the metrics whose defaults name them)
    flow = "dis"

    [[datasets]]
    name = "INSTA"              # the name tables group by (the paper's dataset names group with its rows)
    path = "data/insta"
    kind = "insta"              # optional; detected from the layout otherwise
    sequences = ["bala"]        # optional; every sequence otherwise

    [[methods]]
    name = "INSTA"              # the row name (the paper's row names order the tables)
    adapter = "insta"           # a baselines adapter ...
    settings = { experiment = "/data/insta_out/{sequence}" }

    [[methods]]
    name = "stage-1 proxy"
    frames = "{root}/stage1/rgb"  # ... or stored frames: {root} {sequence} {dataset} are filled in

A dataset of ``kind = "frames"`` is one sequence given directly (``path``: a folder of frames or a
video; optional ``mask`` and ``landmarks``): what ``cabench eval`` runs (benchmark.datasets.adhoc).

Relative paths (``out``, dataset paths, ``frames``, and the adapters' path settings) are resolved
against the config file's folder when it is read, and :func:`to_toml` writes them absolute, so a
config, and the ``config.toml`` a run saves, run the same from any working directory.

This module imports no adapter: what a config needs to know of adapters (their names, the types and
values of their settings, which settings are paths) is given by the caller as :class:`AdapterRules`
(the engine's, :data:`benchmark.engine.methods.ADAPTER_RULES`, which ``cabench run`` passes), and
checked with the schema in one pass, so that every violation is reported at once.
Everything a number depends on (the contents of the frames, the method settings, the protocol,
the metric options and versions) goes into the fingerprint of each stored result
(:mod:`benchmark.results.fingerprint`), so a rerun reuses a result only when it would compute the
same thing.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from benchmark.config_errors import key_path, violations
from benchmark.io import BATCH_SIZE
from benchmark.results.bootstrap import BootstrapSettings
from metrics.device import check_device
from metrics.errors import CabenchError


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    path: str
    kind: str | None = None
    sequences: tuple[str, ...] | None = None
    mask: str | None = None       # kind "frames": a folder of masks
    landmarks: str | None = None  # kind "frames": a .npy (T, 68, 2)
    audio: str | None = None      # a sequence's audio file; "{sequence}" in it is each sequence's name
    audio_offset: float = 0.0     # seconds of the audio's first sample after frame 0


@dataclass(frozen=True)
class MethodConfig:
    name: str
    adapter: str | None = None
    frames: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What the method's output depends on (its name is a label, not part of it)."""
        return {"adapter": self.adapter, "frames": self.frames, "settings": self.settings}


@dataclass(frozen=True)
class RunConfig:
    datasets: tuple[DatasetConfig, ...]
    methods: tuple[MethodConfig, ...]
    metrics: tuple[str, ...] = ("l2", "psnr", "ssim", "lpips")
    out: str = "runs/run"
    protocol: str | tuple[str, ...] = "canonical"  # an id, "all", or several ids
    device: str = "cpu"
    batch_size: int = BATCH_SIZE
    split: str = "test"
    align: tuple[str, ...] = ()
    mask: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


# ---------------------------------------------------------------------------- the schema
# One pydantic model per TOML table, strict (no coercion: "false" is not a boolean, true is not an
# integer, a string is not a list) and closed (an unknown key is an error). A new [run] key is one
# field of RunTable (its default taken from RunConfig) beside its RunConfig field.


def _comma_separated(value: Any) -> Any:
    """``"l2, psnr"`` -> ``["l2", "psnr"]`` (a list passes through; anything else is left to fail)."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def _one_or_more(value: Any) -> Any:
    """``"resize"`` -> ``["resize"]``; ``""`` -> ``[]``."""
    return ([value] if value else []) if isinstance(value, str) else value


def _checked_by(check: Callable[[Any], Any]) -> AfterValidator:
    """A validator that runs ``check(value)``, which raises CabenchError for a value not allowed."""

    def validate(value: Any) -> Any:
        try:
            check(value)
        except CabenchError as error:
            raise ValueError(str(error)) from None
        return value

    return AfterValidator(validate)


def _one_of(what: str, choices: Callable[[], Iterable[str]]) -> AfterValidator:
    """A validator that allows the names ``choices()`` gives (looked up when a config is read)."""

    def check(value: str) -> None:
        known = list(choices())
        if value not in known:
            raise CabenchError(f"unknown {what} {value!r}; choose from {', '.join(known)}")

    return _checked_by(check)


def _metric_names(names: list[str]) -> None:
    from metrics import registry

    if not names:
        raise CabenchError("no metric given")
    for name in names:
        registry.get(name)


def _protocol_names(names: list[str]) -> None:
    from metrics.protocols import PROTOCOLS

    if not names:
        raise CabenchError("no protocol given")
    for name in names:
        if name != "all" and name not in PROTOCOLS:
            raise CabenchError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)} or all")


def _dataset_kinds() -> Iterable[str]:
    from benchmark.datasets import KINDS

    return KINDS


@dataclass(frozen=True)
class AdapterRules:
    """What a config checks of its adapter methods, given by the engine (this module imports no adapter).

    violations(method, where): (key path, what is wrong) for one ``[[methods]]`` entry as read from
        TOML: an unknown adapter, unknown, missing or mistyped settings, values the adapter refuses;
        ``where`` is the entry's key path (``methods[1]``).
    resolve(adapter, settings, base): ``settings`` with the adapter's relative path settings made
        absolute against ``base``.
    """

    violations: Callable[[Any, str], list[tuple[str, str]]]
    resolve: Callable[[str, dict[str, Any], Path], dict[str, Any]]


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RunTable(_Table):
    """``[run]``: how every pair is evaluated (see the module docstring)."""

    out: str = RunConfig.out
    protocol: Annotated[list[str], BeforeValidator(_comma_separated), _checked_by(_protocol_names)] = [RunConfig.protocol]
    device: Annotated[str, _checked_by(lambda name: check_device(name, "device"))] = RunConfig.device
    batch_size: Annotated[int, Field(ge=1)] = RunConfig.batch_size
    split: Literal["test", "train", "val", "all"] = RunConfig.split  # the split names the dataset readers give
    metrics: Annotated[list[str], BeforeValidator(_comma_separated), _checked_by(_metric_names)] = list(RunConfig.metrics)
    align: Annotated[list[Literal["intersect", "resize"]], BeforeValidator(_one_or_more)] = list(RunConfig.align)
    mask: bool = RunConfig.mask
    options: dict[str, Any] = {}
    bootstrap: dict[str, Any] = {}  # its keys and values are checked by BootstrapSettings.from_mapping


class DatasetTable(_Table):
    """One ``[[datasets]]`` entry."""

    path: str
    name: str | None = None
    kind: Annotated[str, _one_of("dataset kind", _dataset_kinds)] | None = None
    sequences: Annotated[list[str], Field(min_length=1)] | None = None
    mask: str | None = None       # kind "frames": a folder of masks
    landmarks: str | None = None  # kind "frames": a .npy (T, 68, 2)
    audio: str | None = None      # a sequence's audio file; "{sequence}" in it is each sequence's name
    audio_offset: float = 0.0     # seconds of the audio's first sample after frame 0


class MethodTable(_Table):
    """One ``[[methods]]`` entry: an adapter with its settings, or stored frames."""

    name: str
    adapter: str | None = None  # its name and settings: AdapterRules
    frames: str | None = None
    settings: dict[str, Any] = {}

    @model_validator(mode="after")
    def _adapter_or_frames(self) -> MethodTable:
        if (self.adapter is None) == (self.frames is None):
            raise ValueError(f"method {self.name!r} needs exactly one of 'adapter' or 'frames'")
        if self.frames is not None and self.settings:
            raise ValueError(f"method {self.name!r}: settings are given to an adapter; stored frames take none")
        return self


class ConfigFile(_Table):
    """A whole config file."""

    run: RunTable = RunTable()
    datasets: Annotated[list[DatasetTable], Field(min_length=1)]
    methods: Annotated[list[MethodTable], Field(min_length=1)]

    @model_validator(mode="after")
    def _names_once(self) -> ConfigFile:
        for what, names in (("dataset", [d.name or Path(d.path).name for d in self.datasets]),
                            ("method", [m.name for m in self.methods])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} name(s) given twice: {', '.join(twice)}")
        return self


def _known_keys(loc: tuple) -> list[str]:
    """The keys the table at ``loc`` (a pydantic error location, its last part the key) allows."""
    model: type[BaseModel] = ConfigFile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    return sorted(model.model_fields)


def config_violations(data: dict[str, Any], adapters: AdapterRules | None = None
                      ) -> tuple[ConfigFile | None, list[tuple[str, str]]]:
    """The validated config (None when it is not valid) and every (key path, what is wrong), the
    adapter methods' by ``adapters`` (see :class:`AdapterRules`; None: adapters are not checked here).
    """
    found: list[tuple[str, str]] = []
    document = None
    try:
        document = ConfigFile.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            path, why = violations([item])[0]
            if item["type"] == "extra_forbidden":
                why = f"unknown key (known: {', '.join(_known_keys(item['loc']))})"
            elif item["type"] in ("missing", "too_short") and len(item["loc"]) == 1:
                why = f"no [[{item['loc'][0]}]] given"
            found.append((path, why))
    methods = data.get("methods") if isinstance(data, dict) else None
    if adapters is not None:
        for i, method in enumerate(methods if isinstance(methods, list) else []):
            found += adapters.violations(method, key_path(("methods", i)))
    return (None if found else document), found


def parse_config(data: dict[str, Any], base: str | os.PathLike = ".", source: str = "config",
                 adapters: AdapterRules | None = None) -> RunConfig:
    """A :class:`RunConfig` from parsed TOML, validated against the schema above before any work;
    relative paths (``out``, dataset paths, ``frames``, and with ``adapters`` the adapters' path
    settings) are resolved against ``base``.

    Raises:
        CabenchError: one line per violation, each naming ``source``, the key path
            (``methods[2].settings.strength``, indices from 0) and what was expected.
    """
    base = Path(base).resolve()
    document, wrong = config_violations(data, adapters)
    if wrong:
        raise CabenchError("\n".join(f"{source}: {path or 'the top level'}: {why}" for path, why in wrong))

    def resolved(path: str | None) -> str | None:
        return None if path is None else str(base / path)

    datasets = tuple(DatasetConfig(name=d.name or Path(d.path).name, path=str(base / d.path), kind=d.kind,
                                   sequences=tuple(d.sequences) if d.sequences else None,
                                   mask=resolved(d.mask), landmarks=resolved(d.landmarks), audio=resolved(d.audio),
                                   audio_offset=d.audio_offset) for d in document.datasets)
    methods = []
    for method in document.methods:
        frames = method.frames
        if frames is not None and not Path(frames).is_absolute() and not frames.startswith("{root}"):
            frames = str(base / frames)
        settings = (adapters.resolve(method.adapter, method.settings, base) if method.adapter and adapters
                    else dict(method.settings))
        methods.append(MethodConfig(name=method.name, adapter=method.adapter, frames=frames, settings=settings))
    run = document.run
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in run.model_dump().items()}
    values["out"] = str(base / run.out)
    values["protocol"] = run.protocol[0] if len(run.protocol) == 1 else tuple(run.protocol)
    values["bootstrap"] = BootstrapSettings.from_mapping(run.bootstrap, f"{source}: run.bootstrap")
    return RunConfig(datasets=datasets, methods=tuple(methods), **values)


def load_config(path: str | os.PathLike, adapters: AdapterRules | None = None) -> RunConfig:
    """Read a TOML run config (errors name the file); ``adapters``: see :func:`parse_config` (without
    them adapter settings are neither checked nor resolved here; :func:`benchmark.runner.load_config`
    reads a config with the engine's)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CabenchError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CabenchError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise CabenchError(f"{path}: not valid TOML ({error})") from None
    return parse_config(data, base=path.parent, source=str(path), adapters=adapters)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ValueError("TOML has no null")
    return json.dumps(str(value))


def to_toml(config: RunConfig, adapters: AdapterRules | None = None) -> str:
    """The config as TOML that :func:`load_config` reads back to an equal config, from any folder: the
    paths of a loaded config are absolute already (relative ones are resolved here against the
    working directory, as the run that uses them would; the adapters' path settings with ``adapters``)."""
    config = absolute_paths(config, adapters)
    lines = ["[run]"]
    for key in ("out", "protocol", "device", "batch_size", "split", "metrics", "align", "mask"):
        lines.append(f"{key} = {_toml_value(getattr(config, key))}")
    lines.append(f"bootstrap = {_toml_value(config.bootstrap.to_mapping())}")
    if config.options:
        lines.append(f"options = {_toml_value(config.options)}")
    for dataset in config.datasets:
        lines += ["", "[[datasets]]", f"name = {_toml_value(dataset.name)}", f"path = {_toml_value(dataset.path)}"]
        if dataset.kind:
            lines.append(f"kind = {_toml_value(dataset.kind)}")
        if dataset.sequences:
            lines.append(f"sequences = {_toml_value(dataset.sequences)}")
        for key in ("mask", "landmarks", "audio", "audio_offset"):
            if getattr(dataset, key):
                lines.append(f"{key} = {_toml_value(getattr(dataset, key))}")
    for method in config.methods:
        lines += ["", "[[methods]]", f"name = {_toml_value(method.name)}"]
        lines.append(f"adapter = {_toml_value(method.adapter)}" if method.adapter else f"frames = {_toml_value(method.frames)}")
        if method.settings:
            lines.append(f"settings = {_toml_value(method.settings)}")
    return "\n".join(lines) + "\n"


def absolute_paths(config: RunConfig, adapters: AdapterRules | None = None) -> RunConfig:
    """``config`` with every path absolute: ``out``, datasets, ``frames`` and, with ``adapters``, the
    adapters' path settings; relative ones are taken against the working directory (a loaded config's
    are absolute already). Templates that start at ``{root}`` are kept."""
    from dataclasses import replace

    def absolute(path: str | None) -> str | None:
        return path if path is None or path.startswith("{root}") else str(Path(path).resolve())

    datasets = tuple(replace(d, path=absolute(d.path), mask=absolute(d.mask), landmarks=absolute(d.landmarks),
                             audio=absolute(d.audio))
                     for d in config.datasets)
    methods = tuple(replace(m, frames=absolute(m.frames),
                            settings=adapters.resolve(m.adapter, m.settings, Path.cwd()) if m.adapter and adapters
                            else m.settings)
                    for m in config.methods)
    return replace(config, out=absolute(config.out), datasets=datasets, methods=methods)
