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

The schema is the config: :class:`RunConfig`, :class:`DatasetConfig` and :class:`MethodConfig` are
strict, closed and frozen pydantic models (no coercion: ``"false"`` is not a boolean, ``true`` is not
an integer, a string is not a list; an unknown key is an error; a loaded config cannot be changed),
and what the engine receives. Each field is declared once, here: the TOML a run saves
(:func:`to_toml`) is written from ``model_dump()``. After loading, every list is a tuple and
``protocol`` is always a tuple of ids (``"canonical,insta"`` and ``"all"`` are read as such).

Relative paths (``out``, dataset paths, ``frames``) are resolved against the config file's folder
when it is read (:meth:`RunConfig.resolved` for a config made in code: against the working
directory), and :func:`to_toml` writes them as they are, absolute, so a config, and the
``config.toml`` a run saves, run the same from any working directory.

This module imports no adapter: a method's ``settings`` are a table here. The engine
(:mod:`benchmark.engine.methods`) checks them against the adapter, resolves the adapter's path
settings and builds each adapter once, reporting its violations with the schema's in one message.
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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from benchmark.config_errors import violations
from benchmark.io import BATCH_SIZE
from benchmark.results.bootstrap import BootstrapSettings
from metrics.device import check_device
from metrics.errors import CabenchError

# ---------------------------------------------------------------------------- field types
# Validation context (given by parse_config, and by RunConfig.resolved): "base", the folder relative
# paths are taken against, and "names", whether metric, protocol and dataset-kind names are looked up
# in their registries (a config made in code leaves that to the run, which a run whose outputs are up
# to date does not reach: the metric registry imports torch).


def _as_tuple(split_commas: bool = False, one: bool = False) -> BeforeValidator:
    """A list read as a tuple (a frozen config holds no list); ``split_commas``: ``"l2, psnr"`` ->
    ``("l2", "psnr")``; ``one``: ``"resize"`` -> ``("resize",)`` and ``""`` -> ``()``. Anything
    else is left to fail."""

    def convert(value: Any) -> Any:
        if isinstance(value, str) and split_commas:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, str) and one:
            return (value,) if value else ()
        return tuple(value) if isinstance(value, list) else value

    return BeforeValidator(convert)


def _checked_by(check: Callable[[Any], Any], names: bool = False) -> AfterValidator:
    """A validator that runs ``check(value)``, which raises CabenchError for a value not allowed;
    ``names``: only where the context asks for registry lookups (see above)."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        if names and not (info.context or {}).get("names"):
            return value
        try:
            check(value)
        except CabenchError as error:
            raise ValueError(str(error)) from None
        return value

    return AfterValidator(validate)


def _metric_names(names: Iterable[str]) -> None:
    from metrics import registry

    if not names:
        raise CabenchError("no metric given")
    for name in names:
        registry.get(name)


def _protocol_names(names: Iterable[str]) -> None:
    from metrics.protocols import PROTOCOLS

    for name in names:
        if name != "all" and name not in PROTOCOLS:
            raise CabenchError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)} or all")


def _some_protocol(names: tuple[str, ...]) -> None:
    if not names:
        raise CabenchError("no protocol given")


def _dataset_kind(kind: str) -> None:
    from benchmark.datasets import KINDS

    if kind not in KINDS:
        raise CabenchError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")


def _absolute(value: str, info: ValidationInfo) -> str:
    """A path made absolute against the context's ``base`` (none: kept as given); templates that start
    at ``{root}`` (the sequence's folder) are kept."""
    base = (info.context or {}).get("base")
    if base is None or value.startswith("{root}"):
        return value
    return str((Path(base) / value).resolve())


def _bootstrap(value: Any) -> BootstrapSettings:
    if isinstance(value, BootstrapSettings):
        return value
    try:
        return BootstrapSettings.from_mapping(value, _BOOTSTRAP_WHERE)
    except CabenchError as error:
        raise ValueError(str(error)) from None


_BOOTSTRAP_WHERE = "run.bootstrap"  # BootstrapSettings names its keys itself (run.bootstrap.seed)

Names = Annotated[tuple[str, ...], _as_tuple()]
PathText = Annotated[str, AfterValidator(_absolute)]
Bootstrap = Annotated[BootstrapSettings, PlainValidator(_bootstrap), PlainSerializer(BootstrapSettings.to_mapping)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=True)

    def replace(self, **changes: Any) -> typing.Self:
        """A copy with ``changes``, validated as a new config is (pydantic's ``model_copy`` checks nothing)."""
        return type(self).model_validate({**dict(self), **changes})


# ---------------------------------------------------------------------------- the config
class DatasetConfig(_Model):
    """One ``[[datasets]]`` entry; ``name`` defaults to the last part of ``path``."""

    path: PathText
    name: str = ""
    kind: Annotated[str, _checked_by(_dataset_kind, names=True)] | None = None  # detected from the layout otherwise
    sequences: Annotated[Names, Field(min_length=1)] | None = None  # every sequence otherwise
    mask: PathText | None = None       # kind "frames": a folder of masks
    landmarks: PathText | None = None  # kind "frames": a .npy (T, 68, 2)
    audio: PathText | None = None      # a sequence's audio file; "{sequence}" in it is each sequence's name
    audio_offset: float = 0.0          # seconds of the audio's first sample after frame 0

    @model_validator(mode="before")
    @classmethod
    def _name_from_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("path"), str):
            return {**data, "name": Path(data["path"]).name}
        return data


class MethodConfig(_Model):
    """One ``[[methods]]`` entry: an adapter with its settings, or stored frames."""

    name: str
    adapter: str | None = None  # checked, with its settings, by the engine (benchmark.engine.methods)
    frames: PathText | None = None
    settings: dict[str, Any] = {}

    @model_validator(mode="after")
    def _adapter_or_frames(self) -> MethodConfig:
        if (self.adapter is None) == (self.frames is None):
            raise ValueError(f"method {self.name!r} needs exactly one of 'adapter' or 'frames'")
        if self.frames is not None and self.settings:
            raise ValueError(f"method {self.name!r}: settings are given to an adapter; stored frames take none")
        return self

    def identity(self) -> dict[str, Any]:
        """What the method's output depends on (its name is a label, not part of it)."""
        return {"adapter": self.adapter, "frames": self.frames, "settings": self.settings}


class RunConfig(_Model):
    """A whole run config: the ``[run]`` table's keys (see the module docstring), its datasets and methods."""

    out: PathText = "runs/run"
    protocol: Annotated[tuple[str, ...], _as_tuple(split_commas=True), _checked_by(_some_protocol),
                        _checked_by(_protocol_names, names=True)] = ("canonical",)  # ids, or "all"
    device: Annotated[str, _checked_by(lambda name: check_device(name, "device"))] = "cpu"
    batch_size: Annotated[int, Field(ge=1)] = BATCH_SIZE
    split: Literal["test", "train", "val", "all"] = "test"  # the split names the dataset readers give
    metrics: Annotated[tuple[str, ...], _as_tuple(split_commas=True),
                       _checked_by(_metric_names, names=True)] = ("l2", "psnr", "ssim", "lpips")
    align: Annotated[tuple[Literal["intersect", "resize"], ...], _as_tuple(one=True)] = ()
    mask: bool = False
    options: dict[str, Any] = {}  # checked against the metrics when the run starts (split_options)
    bootstrap: Bootstrap = BootstrapSettings()
    datasets: Annotated[tuple[DatasetConfig, ...], _as_tuple(), Field(min_length=1)]
    methods: Annotated[tuple[MethodConfig, ...], _as_tuple(), Field(min_length=1)]

    @model_validator(mode="after")
    def _names_once(self) -> RunConfig:
        for what, names in (("dataset", [d.name for d in self.datasets]), ("method", [m.name for m in self.methods])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} name(s) given twice: {', '.join(twice)}")
        return self

    def resolved(self, base: str | os.PathLike | None = None) -> RunConfig:
        """This config with its relative paths (``out``, datasets, ``frames``) made absolute against
        ``base`` (default: the working directory, as a run takes them); absolute ones are kept."""
        return RunConfig.model_validate(self.model_dump(), context={"base": Path(base or Path.cwd()).resolve()})


RUN_KEYS = tuple(name for name in RunConfig.model_fields if name not in ("datasets", "methods"))  # the [run] table's
TOP_KEYS = ("datasets", "methods", "run")


# ---------------------------------------------------------------------------- TOML in
def _known_keys(loc: tuple) -> list[str]:
    """The keys the table at ``loc`` (a pydantic error location, its last part the key) allows."""
    if len(loc) == 1:
        return sorted(RUN_KEYS)
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    return sorted(model.model_fields)


def _flattened(data: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The TOML document as the model's fields (the ``[run]`` table's keys beside ``datasets`` and
    ``methods``), and what is wrong with its shape (a key outside the three tables, ``run`` not a table)."""
    from benchmark.config_errors import shown

    if not isinstance(data, Mapping):
        return {}, [("", f"expected a table, got {shown(data)}")]
    wrong = [(key, f"unknown key (known: {', '.join(TOP_KEYS)})") for key in data if key not in TOP_KEYS]
    run = data.get("run", {})
    if not isinstance(run, Mapping):
        wrong.append(("run", f"expected a table, got {shown(run)}"))
        run = {}
    wrong += [(f"run.{key}", f"unknown key (known: {', '.join(sorted(RUN_KEYS))})")
              for key in run if key in ("datasets", "methods")]
    fields = {key: value for key, value in run.items() if key not in ("datasets", "methods")}
    fields.update({key: data[key] for key in ("datasets", "methods") if key in data})
    return fields, wrong


def config_violations(data: Any, base: str | os.PathLike = ".") -> tuple[RunConfig | None, list[tuple[str, str]]]:
    """The config of a parsed TOML document (None when it is not valid), its relative paths taken
    against ``base``, and every (key path, what is wrong) against the schema."""
    fields, found = _flattened(data)
    config = None
    try:
        config = RunConfig.model_validate(fields, context={"base": Path(base).resolve(), "names": True})
    except ValidationError as error:
        for item in error.errors():
            loc = item["loc"]
            loc = ("run", *loc) if loc and loc[0] in RUN_KEYS or (item["type"] == "extra_forbidden" and len(loc) == 1) else loc
            path, why = violations([{**item, "loc": loc}])[0]
            if item["type"] == "extra_forbidden":
                why = f"unknown key (known: {', '.join(_known_keys(item['loc']))})"
            elif item["type"] in ("missing", "too_short") and loc in (("datasets",), ("methods",)):
                why = f"no [[{loc[0]}]] given"
            elif why.startswith(_BOOTSTRAP_WHERE):  # BootstrapSettings names the key itself
                path, _, why = why.partition(": ")
            found.append((path, why))
    return (None if found else config), found


def violation_error(found: list[tuple[str, str]], source: str) -> CabenchError:
    """One error, one line per (key path, what is wrong), each naming ``source``."""
    return CabenchError("\n".join(f"{source}: {path or 'the top level'}: {why}" for path, why in found))


def parse_config(data: Any, base: str | os.PathLike = ".", source: str = "config") -> RunConfig:
    """The :class:`RunConfig` of parsed TOML, validated against the schema before any work; relative
    paths are resolved against ``base``. Method settings are not checked here (see the module docstring).

    Raises:
        CabenchError: one line per violation, each naming ``source``, the key path
            (``run.batch_size``, ``methods[2].frames``; indices from 0) and what was expected.
    """
    config, wrong = config_violations(data, base)
    if wrong:
        raise violation_error(wrong, source)
    return config


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML file's document; an absent, unreadable or invalid file is one error naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CabenchError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CabenchError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise CabenchError(f"{path}: not valid TOML ({error})") from None


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a TOML run config against the schema (errors name the file); method settings are checked
    by the engine (:func:`benchmark.runner.load_config` reads a config as ``cabench run`` does)."""
    return parse_config(read_toml(path), base=Path(path).parent, source=str(path))


# ---------------------------------------------------------------------------- TOML out
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


def _table(values: dict[str, Any]) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in values.items()]


def to_toml(config: RunConfig) -> str:
    """The config as TOML, written from ``model_dump()`` (unset optional keys left out), that
    :func:`load_config` reads back to an equal config from any folder once its paths are absolute
    (a loaded config's are; :meth:`RunConfig.resolved` makes a config made in code so)."""
    data = config.model_dump(exclude_none=True)
    lines = ["[run]", *_table({key: data[key] for key in RUN_KEYS})]
    for key in ("datasets", "methods"):
        for entry in data[key]:
            lines += ["", f"[[{key}]]", *_table(entry)]
    return "\n".join(lines) + "\n"
