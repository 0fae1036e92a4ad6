"""Lazy package attributes and the lazy registry: import a module only when one of its names is first used."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from metrics.errors import CabenchError


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a name to the module that defines
    it; any other name is tried as a submodule (``package.name``)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects, each object imported on its first lookup (the shape of pyiqa's and
    lm-evaluation-harness's registries): the adapters, the dataset readers and the protocols.

    ``register(name, obj)`` (or ``@register(name)``) holds an object; ``register_lazy(name,
    "package.module:attribute")`` holds where to find it, so that listing names imports nothing and
    looking one up imports only its module. ``get`` answers an unknown name with the closest known
    one. Iteration, ``in`` and ``keys()`` follow registration order (the order choices are printed).
    """

    def __init__(self, what: str):
        self.what = what  # what a name names, for messages: "adapter", "protocol", ...
        self._targets: dict[str, str | None] = {}  # name -> "module:attribute", or None once loaded
        self._objects: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """Hold ``obj`` under ``name``; without ``obj``, a decorator that does so."""
        if obj is None:
            return lambda target: self.register(name, target)
        if name in self._targets:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._targets[name] = None
        self._objects[name] = obj
        return obj

    def register_lazy(self, name: str, target: str) -> None:
        """Hold ``target`` (``"package.module:attribute"``) under ``name``; imported by :meth:`get`."""
        if name in self._targets:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        if target.count(":") != 1:
            raise ValueError(f"{self.what} {name!r}: target {target!r} is not 'module:attribute'")
        self._targets[name] = target

    def get(self, name: str) -> T:
        """The object registered as ``name`` (importing its module the first time); an unknown name is a
        :class:`CabenchError` that suggests the closest known name and lists them all."""
        if name not in self._targets:
            close = difflib.get_close_matches(str(name), self._targets, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CabenchError(f"unknown {self.what} {name!r}{hint}; choose from {', '.join(self._targets)}")
        if name not in self._objects:
            module, _, attribute = self._targets[name].partition(":")
            self._objects[name] = getattr(importlib.import_module(module), attribute)
        return self._objects[name]

    def keys(self) -> list[str]:
        return list(self._targets)

    def targets(self) -> dict[str, str | None]:
        """``{name: "module:attribute"}`` as registered (None for objects registered directly)."""
        return {name: self._targets[name] for name in self._targets}

    def items(self) -> list[tuple[str, T]]:
        """Every (name, object), importing what is not loaded yet."""
        return [(name, self.get(name)) for name in self._targets]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._targets))

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.keys()})"
