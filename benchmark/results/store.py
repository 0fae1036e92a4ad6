"""The part store: the values of one metric for one (dataset, sequence, method, protocol), kept as
they are computed, at a cost linear in the number of frames.

Files of a part named ``<name>`` in its folder (:meth:`RunFolder.part_folder`):

- ``<name>.log`` while it is being computed: a header line (JSON: the part's fingerprint), then one
  record per batch, appended: the batch's rows as CSV (with a header line), then a commit line
  ``#commit <bytes> <crc32>`` over those bytes. A record is valid only when its commit line is
  complete and its length and checksum match, so a process killed at any point (even in the
  middle of a write) leaves a log whose valid records are exactly the batches that were stored;
  the torn tail is cut off when the part is resumed. Appending writes each value once, so a part
  of n frames costs O(n) bytes (rewriting the whole part after every batch, as a CSV would need,
  costs O(n²)). The log is not fsynced per batch: a kill cannot lose what the kernel was given,
  and what a power loss leaves half-written fails its checksum and is recomputed.
- ``<name>.csv`` and ``<name>.json`` once complete: the log compacted into one CSV sorted by
  frame (written atomically), then the state (fingerprint, ``complete``), then the log removed.
- ``<name>.json`` alone with ``missing``: the metric could not run, and why.

Values are written with Python's shortest round-trip representation and read back with pandas'
round-trip float parser, so a stored value reads back to the float that was computed: a resumed
run ends with the same bytes in ``per_frame.csv`` as an uninterrupted one.
A part whose stored fingerprint differs from the expected one is treated as absent.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.results.files import atomic_write_csv, atomic_write_text, write_failure

COMMIT = b"#commit "


def read_values(source: str | Path | io.BytesIO) -> pd.DataFrame:
    """A stored CSV read back exactly (round-trip floats)."""
    return pd.read_csv(source, float_precision="round_trip")


class Part:
    """The stored values of one name (a metric, or the runtime ``time_s``) for one pair and protocol."""

    def __init__(self, folder: Path, name: str, fingerprint: str, made_of: dict[str, Any] | None = None):
        self.folder = Path(folder)
        self.name = name
        self.fingerprint = fingerprint
        self.made_of = made_of or {}
        self.csv = self.folder / f"{name}.csv"
        self.state_file = self.folder / f"{name}.json"
        self.log = self.folder / f"{name}.log"
        self.state = self._read_state()

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) and state.get("fingerprint") == self.fingerprint else {}

    @property
    def complete(self) -> bool:
        return bool(self.state.get("complete")) and self.csv.is_file()

    @property
    def missing(self) -> str | None:
        """Why the metric could not run when this part was last visited, or None."""
        return self.state.get("missing")

    # ------------------------------------------------------------------ reading

    def _committed(self) -> tuple[list[bytes], int]:
        """The log's valid records and the offset where they end (-1 when the log is absent or another
        fingerprint's)."""
        try:
            data = self.log.read_bytes()
        except OSError:
            return [], -1
        end = data.find(b"\n")
        try:
            header = json.loads(data[:end]) if end >= 0 else {}
        except ValueError:
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            return [], -1
        records, position = [], end + 1
        while True:
            commit = data.find(COMMIT, position)
            line_end = data.find(b"\n", commit) if commit >= 0 else -1
            if line_end < 0:
                break
            try:
                size, checksum = data[commit + len(COMMIT):line_end].split()
                record = data[position:commit]
                valid = len(record) == int(size) and zlib.crc32(record) == int(checksum, 16)
            except ValueError:
                valid = False
            if not valid:
                break
            records.append(record)
            position = line_end + 1
        return records, position

    def rows(self) -> pd.DataFrame:
        """The stored rows: the compacted CSV when complete, else the log's committed records."""
        if self.complete:
            return read_values(self.csv)
        records, _ = self._committed()
        if not records:
            return pd.DataFrame()
        header, _, _ = records[0].partition(b"\n")
        body = b"".join(record.partition(b"\n")[2] for record in records)
        return read_values(io.BytesIO(header + b"\n" + body))

    # ------------------------------------------------------------------ writing

    def begin(self, keep: bool) -> None:
        """Start (``keep=False``: afresh) or continue appending; a torn tail of the log is cut off."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.state_file.unlink(missing_ok=True)
            self.csv.unlink(missing_ok=True)
            self.state = {}
            _, end = self._committed() if keep else ([], -1)
            if end < 0:
                header = json.dumps({"fingerprint": self.fingerprint, "name": self.name}) + "\n"
                self.log.write_bytes(header.encode())
            else:
                with open(self.log, "r+b") as stream:
                    stream.truncate(end)
        except OSError as error:
            raise write_failure(self.log, error) from None

    def append(self, rows: pd.DataFrame) -> None:
        """Store one batch's rows (one write of one record)."""
        record = rows.to_csv(index=False, lineterminator="\n").encode()
        commit = COMMIT + f"{len(record)} {zlib.crc32(record):08x}\n".encode()
        try:
            with open(self.log, "ab") as stream:
                stream.write(record + commit)
        except OSError as error:
            raise write_failure(self.log, error) from None

    def finish(self) -> None:
        """Compact the log into the part's CSV and mark the part complete."""
        rows = self.rows()
        if len(rows):
            rows = rows.sort_values("frame", kind="stable").reset_index(drop=True)
        atomic_write_csv(rows, self.csv)
        self._write_state({"complete": True, "frames": len(rows)})
        self.log.unlink(missing_ok=True)

    def mark_missing(self, reason: str) -> None:
        """Record that the metric could not run, and why (no values are kept)."""
        for path in (self.csv, self.log):
            path.unlink(missing_ok=True)
        self._write_state({"complete": False, "missing": reason})

    def write_all(self, rows: pd.DataFrame) -> None:
        """Store a complete part in one go (the runtime column, known all at once)."""
        atomic_write_csv(rows, self.csv)
        self.log.unlink(missing_ok=True)
        self._write_state({"complete": True, "frames": len(rows)})

    def remove(self) -> None:
        for path in (self.csv, self.log, self.state_file):
            path.unlink(missing_ok=True)
        self.state = {}

    def _write_state(self, fields: dict[str, Any]) -> None:
        self.state = {"fingerprint": self.fingerprint, "name": self.name, **fields, "made_of": self.made_of}
        atomic_write_text(self.state_file, json.dumps(self.state, indent=1, default=str) + "\n")
