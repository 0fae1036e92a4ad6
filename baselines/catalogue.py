"""The adapter catalogue: each adapter's key names the ``module:Class`` that implements it, imported on
first lookup (so listing adapters, or checking a config, imports no adapter that is not used), and
the functions that check and build adapters from a run config's settings.

The adapters import :mod:`baselines.base`; nothing imports the adapters but this catalogue's lazy
lookups, so the package has no import circle.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from baselines.base import Adapter
from metrics.errors import CabenchError
from metrics.lazy import Registry

ADAPTERS: Registry[type[Adapter]] = Registry("adapter")
ADAPTERS.register_lazy("avatarmav", "baselines.folders:AvatarMAV")
ADAPTERS.register_lazy("consistentavatar", "baselines.consistentavatar:ConsistentAvatar")
ADAPTERS.register_lazy("degraded", "baselines.degradations:Degraded")
ADAPTERS.register_lazy("diffusionrig", "baselines.diffusionrig:DiffusionRig")
ADAPTERS.register_lazy("folder", "baselines.folders:FolderAdapter")
ADAPTERS.register_lazy("imavatar", "baselines.folders:IMAvatar")
ADAPTERS.register_lazy("insta", "baselines.insta:INSTA")
ADAPTERS.register_lazy("maavatar", "baselines.folders:MAAvatar")
ADAPTERS.register_lazy("nerface", "baselines.folders:NeRFace")
ADAPTERS.register_lazy("nha", "baselines.folders:NHA")
ADAPTERS.register_lazy("pointavatar", "baselines.folders:PointAvatar")
ADAPTERS.register_lazy("proxy_vae", "baselines.proxy_vae:ProxyThroughVAE")
ADAPTERS.register_lazy("sadtalker", "baselines.sadtalker:SadTalker")


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator for adapters outside this package: make ``cls`` available as
    ``create_adapter(cls.key, ...)``."""
    if not cls.key:
        raise ValueError(f"{cls.__name__} has no key")
    ADAPTERS.register(cls.key, cls)
    return cls


def list_adapters() -> list[str]:
    """Every registered adapter key, sorted (nothing is imported)."""
    return sorted(ADAPTERS)


def adapter_class(key: str) -> type[Adapter]:
    """The adapter class registered as ``key``, its module imported on this first lookup."""
    return ADAPTERS.get(key)


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
    is not an integer). Values are checked by the adapter itself when it is built."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    from benchmark.config_errors import violations

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
