"""Run configs (TOML): which datasets, sequences, methods and metrics a run crosses, and how.

A config file looks like::

    [run]
    out = "runs/insta"          # output folder (relative paths: relative to the config file)
    protocol = "canonical"      # evaluation protocol id recorded beside every number; a list of
                                # ids or "all" evaluates the same outputs under each of them
    device = "cpu"              # "cpu", "cuda", or "auto" (the accelerate process's device)
    batch_size = 16
    split = "test"              # frames of each sequence to evaluate: a split name or "all"
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
Everything a number depends on (the contents of the frames, the method settings, the protocol,
the metric options and versions) goes into the fingerprint of each stored result
(:mod:`benchmark.results.fingerprint`), so a rerun reuses a result only when it would compute the
same thing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from benchmark.results.bootstrap import BootstrapSettings
from metrics.errors import CabenchError


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    path: str
    kind: str | None = None
    sequences: tuple[str, ...] | None = None
    mask: str | None = None       # kind "frames": a folder of masks
    landmarks: str | None = None  # kind "frames": a .npy (T, 68, 2)


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
    batch_size: int = 16
    split: str = "test"
    align: tuple[str, ...] = ()
    mask: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


_RUN_KEYS = {"out", "protocol", "device", "batch_size", "split", "metrics", "align", "mask", "options", "bootstrap"}


def _require(table: dict, key: str, where: str, source: str) -> Any:
    if key not in table:
        raise CabenchError(f"{source}: {where} needs {key!r}")
    return table[key]


def _unknown(table: dict, allowed: set[str], where: str, source: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise CabenchError(f"{source}: unknown key(s) {', '.join(extra)} in {where} (known: {', '.join(sorted(allowed))})")


def _names(items: tuple, what: str, source: str) -> None:
    names = [item.name for item in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CabenchError(f"{source}: {what} name(s) given twice: {', '.join(twice)}")


def parse_config(data: dict[str, Any], base: str | os.PathLike = ".", source: str = "config") -> RunConfig:
    """A :class:`RunConfig` from parsed TOML; relative paths are resolved against ``base``."""
    base = Path(base).resolve()
    _unknown(data, {"run", "datasets", "methods"}, "the top level", source)
    run = dict(data.get("run", {}))
    _unknown(run, _RUN_KEYS, "[run]", source)
    datasets = []
    for i, table in enumerate(data.get("datasets", [])):
        where = f"[[datasets]] #{i + 1}"
        _unknown(table, {"name", "path", "kind", "sequences", "mask", "landmarks"}, where, source)
        path = str(_require(table, "path", where, source))
        sequences = table.get("sequences")
        mask, landmarks = table.get("mask"), table.get("landmarks")
        datasets.append(DatasetConfig(name=str(table.get("name", Path(path).name)), path=str(base / path),
                                      kind=table.get("kind"), sequences=tuple(sequences) if sequences else None,
                                      mask=None if mask is None else str(base / mask),
                                      landmarks=None if landmarks is None else str(base / landmarks)))
    methods = []
    for i, table in enumerate(data.get("methods", [])):
        where = f"[[methods]] #{i + 1}"
        _unknown(table, {"name", "adapter", "frames", "settings"}, where, source)
        name = str(_require(table, "name", where, source))
        adapter, frames = table.get("adapter"), table.get("frames")
        if (adapter is None) == (frames is None):
            raise CabenchError(f"{source}: method {name!r} needs exactly one of 'adapter' or 'frames'")
        if frames is not None and not Path(frames).is_absolute() and not str(frames).startswith("{root}"):
            frames = str(base / frames)
        settings = dict(table.get("settings", {}))
        if adapter is not None:
            from baselines.base import resolve_path_settings

            settings = resolve_path_settings(str(adapter), settings, base)
        methods.append(MethodConfig(name=name, adapter=adapter, frames=frames, settings=settings))
    if not datasets:
        raise CabenchError(f"{source}: no [[datasets]] given")
    if not methods:
        raise CabenchError(f"{source}: no [[methods]] given")
    _names(tuple(datasets), "dataset", source)
    _names(tuple(methods), "method", source)
    metrics = run.get("metrics", RunConfig.metrics)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    align = run.get("align", ())
    align = (align,) if isinstance(align, str) else tuple(align)
    batch_size = run.get("batch_size", 16)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CabenchError(f"{source}: [run] batch_size must be a positive integer, got {batch_size!r}")
    out = Path(run.get("out", "runs/run"))
    protocol = run.get("protocol", "canonical")
    protocol = tuple(str(p) for p in protocol) if isinstance(protocol, list) else str(protocol)
    return RunConfig(datasets=tuple(datasets), methods=tuple(methods), metrics=tuple(metrics),
                     out=str(out if out.is_absolute() else base / out), protocol=protocol,
                     device=str(run.get("device", "cpu")), batch_size=batch_size, split=str(run.get("split", "test")),
                     align=tuple(a for a in align if a), mask=bool(run.get("mask", False)),
                     options=dict(run.get("options", {})),
                     bootstrap=BootstrapSettings.from_mapping(run.get("bootstrap", {}), f"{source}: [run] bootstrap"))


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a TOML run config (errors name the file)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CabenchError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CabenchError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise CabenchError(f"{path}: not valid TOML ({error})") from None
    return parse_config(data, base=path.parent, source=str(path))


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


def to_toml(config: RunConfig) -> str:
    """The config as TOML that :func:`load_config` reads back to an equal config, from any folder: the
    paths of a loaded config are absolute already (relative ones are resolved here against the
    working directory, as the run that uses them would)."""
    config = absolute_paths(config)
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
        for key in ("mask", "landmarks"):
            if getattr(dataset, key):
                lines.append(f"{key} = {_toml_value(getattr(dataset, key))}")
    for method in config.methods:
        lines += ["", "[[methods]]", f"name = {_toml_value(method.name)}"]
        lines.append(f"adapter = {_toml_value(method.adapter)}" if method.adapter else f"frames = {_toml_value(method.frames)}")
        if method.settings:
            lines.append(f"settings = {_toml_value(method.settings)}")
    return "\n".join(lines) + "\n"


def absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with every path absolute: ``out``, datasets, ``frames`` and the adapters' path
    settings; relative ones are taken against the working directory (a loaded config's are
    absolute already). Templates that start at ``{root}`` are kept."""
    from dataclasses import replace

    from baselines.base import resolve_path_settings

    def absolute(path: str | None) -> str | None:
        return path if path is None or path.startswith("{root}") else str(Path(path).resolve())

    datasets = tuple(replace(d, path=absolute(d.path), mask=absolute(d.mask), landmarks=absolute(d.landmarks))
                     for d in config.datasets)
    methods = tuple(replace(m, frames=absolute(m.frames),
                            settings=resolve_path_settings(m.adapter, m.settings, Path.cwd()) if m.adapter else m.settings)
                    for m in config.methods)
    return replace(config, out=absolute(config.out), datasets=datasets, methods=methods)
