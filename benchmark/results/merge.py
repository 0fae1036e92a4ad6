"""Merging: the stored parts of a run read into the result table and the missing records.

The caller says which parts it expects and under which fingerprints (:class:`StoredPair`, one per
(dataset, sequence, method), as the runner plans them); a part stored under another fingerprint
(other inputs, settings or versions) is not merged but reported as not stored. Rows come out
pair by pair in the given order, protocols in the given order within a pair, frames sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchmark.results.folder import RunFolder
from benchmark.results.schema import TIME_COLUMN, missing_table, result_table
from benchmark.results.store import Part
from metrics.errors import CabenchError


@dataclass
class StoredPair:
    """The parts one (dataset, sequence, method) of a run must have.

    parts: ``{(protocol, metric): fingerprint}`` in output order; runtime: the fingerprint of its
    ``time_s`` part (None where the method is not rendered by the run: stored frames have no time).
    """

    dataset: str
    sequence: str
    method: str
    parts: dict[tuple[str, str], str] = field(default_factory=dict)
    runtime: str | None = None

    @property
    def protocols(self) -> list[str]:
        return list(dict.fromkeys(protocol for protocol, _ in self.parts))

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.sequence}/{self.method}"


def merge(folder: RunFolder, pairs: Sequence[StoredPair]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(result table, missing records) of the stored parts of ``pairs`` (see the module docstring)."""
    tables, missing, columns = [], [], []
    for pair in pairs:
        pair_folder = folder.pair_folder(pair.dataset, pair.sequence, pair.method)
        runtime = None
        if pair.runtime is not None:
            time_part = Part(pair_folder, TIME_COLUMN, pair.runtime)
            runtime = time_part.rows() if time_part.complete else None
            runtime = runtime if runtime is not None and len(runtime) else None  # stored outputs: no time
        for protocol in pair.protocols:
            merged: pd.DataFrame | None = None
            part_folder = folder.part_folder(pair.dataset, pair.sequence, pair.method, protocol)
            for (part_protocol, metric), fingerprint in pair.parts.items():
                if part_protocol != protocol:
                    continue
                part = Part(part_folder, metric, fingerprint)
                if part.missing:
                    missing.append({"dataset": pair.dataset, "sequence": pair.sequence, "method": pair.method,
                                    "protocol": protocol, "metric": metric, "reason": part.missing})
                    continue
                if not part.complete:
                    raise CabenchError(f"{part.csv}: {pair.label} {metric} ({protocol}) is not stored for the current "
                                       "inputs and settings; run the config again to finish it")
                rows = part.rows()
                columns += [c for c in rows.columns if c != "frame" and c not in columns]
                merged = rows if merged is None else merged.merge(rows, on="frame", how="outer")
            if runtime is not None:
                merged = runtime if merged is None else merged.merge(runtime, on="frame", how="outer")
            if merged is None:
                continue
            merged = merged.sort_values("frame", kind="stable").reset_index(drop=True)
            head = pd.DataFrame({"dataset": pair.dataset, "sequence": pair.sequence, "method": pair.method,
                                 "frame": merged["frame"].astype(int).to_numpy(), "protocol": protocol})
            tables.append(pd.concat([head, merged.drop(columns="frame")], axis=1))
    return result_table(tables, columns), missing_table(missing)
