"""How a run's summaries, tables and marks are bootstrapped: :class:`BootstrapSettings`.

One set of settings serves everything a run reports about uncertainty, so that ``summary.csv``,
the tables' intervals and marks, the plots' error bars and the report agree:

- ``resamples``: bootstrap resamples per estimate (default 2000; the Monte Carlo error of a 95%
  interval's bounds is then about 1.6% of its half-width);
- ``seed``: the run's bootstrap seed; every estimate draws from its own stream derived from it and
  the names of what it estimates (:func:`benchmark.results.statistics.estimate_seed`), so the same
  run and seed give the same numbers, and adding a method leaves the others' unchanged;
- ``level``: the level of every interval (default 0.95); the tables' marks test at ``1 - level``.

In a run config: ``[run] bootstrap = { resamples = 2000, seed = 0, level = 0.95 }`` (any key may be
left out). A run saves it in its ``config.toml``, so ``cabench tables`` and ``cabench plots`` on the
run folder use the run's settings (:func:`saved_settings`); ``--resamples``, ``--seed`` and
``--level`` override them (:meth:`BootstrapSettings.overridden`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.results.statistics import LEVEL, MAX_RESAMPLES, RESAMPLES
from metrics.errors import CabenchError


@dataclass(frozen=True)
class BootstrapSettings:
    """Resamples, seed and interval level of the block bootstrap (see the module docstring)."""

    resamples: int = RESAMPLES
    seed: int = 0
    level: float = LEVEL

    def __post_init__(self) -> None:
        check_settings(self.resamples, self.seed, self.level)

    @property
    def alpha(self) -> float:
        """The significance level of the marks and comparisons: ``1 - level``."""
        return 1.0 - self.level

    def describe(self) -> str:
        """One line for captions and reports: ``95% intervals, 2000 resamples, seed 0``."""
        return f"{100 * self.level:g}% intervals, {self.resamples} resamples, seed {self.seed}"

    def overridden(self, resamples: int | None = None, seed: int | None = None,
                   level: float | None = None) -> BootstrapSettings:
        """These settings with each value that is given replaced; a bad one is named as its option (``--level``)."""
        given = {key: value for key, value in (("resamples", resamples), ("seed", seed), ("level", level))
                 if value is not None}
        merged = {**self.to_mapping(), **given}
        check_settings(merged["resamples"], merged["seed"], merged["level"], "--{}".format)
        return replace(self, **given)

    def to_mapping(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level}

    @classmethod
    def from_mapping(cls, table: Any, where: str = "bootstrap") -> BootstrapSettings:
        """Settings from a TOML table such as ``{ resamples = 2000, seed = 0, level = 0.95 }``; a bad
        key or value is one :class:`CabenchError` naming ``where`` and the key (``where.level``)."""
        if not isinstance(table, Mapping):
            raise CabenchError(f"{where}: must be a table such as {{ resamples = 2000, seed = 0, level = 0.95 }}, "
                               f"got {table!r}")
        unknown = sorted(set(table) - {"resamples", "seed", "level"})
        if unknown:
            raise CabenchError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (known: level, resamples, seed)")
        defaults = cls()
        values = {key: table.get(key, getattr(defaults, key)) for key in ("resamples", "seed", "level")}
        check_settings(values["resamples"], values["seed"], values["level"], lambda key: f"{where}.{key}")
        return cls(int(values["resamples"]), int(values["seed"]), float(values["level"]))


def check_settings(resamples: Any, seed: Any, level: Any, name: Callable[[str], str] = "bootstrap.{}".format) -> None:
    """Raise one :class:`CabenchError` for a value the bootstrap cannot use, naming it by ``name(key)``
    (a config key path, or a command-line option)."""
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not 2 <= resamples <= MAX_RESAMPLES:
        raise CabenchError(f"{name('resamples')}: must be an integer from 2 to {MAX_RESAMPLES:,}, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CabenchError(f"{name('seed')}: must be a non-negative integer, got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise CabenchError(f"{name('level')}: must be a number between 0 and 1 (such as 0.95), got {level!r}")


def saved_settings(folder: str | Path) -> BootstrapSettings:
    """The settings a run folder was made with: ``[run] bootstrap`` of its saved ``config.toml``
    (the defaults where the folder has none, or the config has no such key)."""
    import tomllib

    path = Path(folder) / "config.toml"
    if not path.is_file():
        return BootstrapSettings()
    try:
        run = tomllib.loads(path.read_text(encoding="utf-8")).get("run", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CabenchError(f"{path}: cannot read the run's bootstrap settings ({error})") from None
    return BootstrapSettings.from_mapping(run.get("bootstrap", {}), f"{path}: [run] bootstrap")
