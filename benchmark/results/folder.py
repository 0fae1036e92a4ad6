"""The run folder: where a run (``cabench run``, ``eval``, ``demo``) keeps everything it writes.

Layout (every dataset, sequence, method and protocol name passes through :func:`safe_name`, so
no name can address a path outside the folder)::

    OUT/.cabench/run.json                        the marker: this folder is a cabench run folder
    OUT/.cabench/lock[-I-of-N]                   the run's lock (benchmark.results.lock)
    OUT/parts/<dataset>/<sequence>/<method>/     the stored results of one (sequence, method) pair:
        method.json, samples.png, time_s.csv|json, <protocol>/<metric>.csv|json|log (results.store)
    OUT/parts/<dataset>/<sequence>/gt_samples.png
    OUT/cache/<dataset>/<sequence>/              values derived from one ground-truth sequence,
                                                 kept across methods and runs (keyed by content inside)
    OUT/per_frame.csv summary.csv missing.csv methods.csv metadata.json config.toml table*.md|tex|csv
        metrics.* plots/ report.html

Convention: cabench writes only into a folder that is empty (or absent) or that carries its
marker, so files it did not write are never replaced; it checks that it can write there before
any work starts. A folder that holds a symbolic link anywhere inside it is refused
(:func:`refuse_links`): a run folder received from someone else could otherwise direct cabench's
writes outside it (a link at ``.cabench/lock``, ``plots/``, ``parts/`` or ``cache/``); the lock file
is also opened with ``O_NOFOLLOW``. The folder's own path may go through links (it is resolved first). Every output file is replaced atomically (:mod:`benchmark.results.files`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from benchmark.results.files import TEMPORARY, atomic_write_text, write_failure
from benchmark.results.lock import RunLock
from benchmark.results.names import safe_name
from metrics.errors import CabenchError

FORMAT = 1  # the layout above; a folder marked with another format is refused rather than misread
OUTPUT_FILES = ("per_frame.csv", "summary.csv", "missing.csv", "methods.csv", "metadata.json", "config.toml",
                "report.html")


def refuse_links(folder: str | Path) -> None:
    """Raise a CabenchError naming the first symbolic link found inside ``folder`` (not following links)."""
    root = Path(folder)
    if not root.is_dir():
        return
    for parent, folders, files in os.walk(root, followlinks=False):
        for name in sorted([*folders, *files]):
            path = Path(parent) / name
            if path.is_symlink():
                raise CabenchError(f"{path}: a symbolic link inside the run folder (to {os.readlink(path)}); cabench "
                                   "writes only inside its run folder: remove the link, or choose another folder")


class RunFolder:
    """A run's output folder (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    @property
    def meta(self) -> Path:
        return self.path / ".cabench"

    @property
    def marker(self) -> Path:
        return self.meta / "run.json"

    @property
    def parts(self) -> Path:
        return self.path / "parts"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def sequence_folder(self, dataset: str, sequence: str) -> Path:
        return self.parts / safe_name(dataset) / safe_name(sequence)

    def pair_folder(self, dataset: str, sequence: str, method: str) -> Path:
        return self.sequence_folder(dataset, sequence) / safe_name(method)

    def part_folder(self, dataset: str, sequence: str, method: str, protocol: str) -> Path:
        return self.pair_folder(dataset, sequence, method) / safe_name(protocol)

    def truth_cache(self, dataset: str, sequence: str) -> Path:
        """Where values derived from the ground truth of one sequence are kept across methods and runs."""
        return self.cache / safe_name(dataset) / safe_name(sequence)

    def is_run_folder(self) -> bool:
        return self.marker.is_file()

    def check(self) -> None:
        """Refuse a folder cabench must not write into, before any work (see the module docstring)."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise CabenchError(f"{path}: not a folder; the output must be a folder (empty, absent, or a cabench run folder)")
        if path.is_dir() and not self.is_run_folder():
            try:
                entries = sorted(p.name for p in path.iterdir() if p.name != self.meta.name)  # .cabench: being made
            except OSError as error:
                raise CabenchError(f"{path}: cannot list the output folder ({error.strerror})") from None
            if entries:
                shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
                raise CabenchError(f"{path}: the folder holds files cabench did not write ({shown}); give an empty "
                                   "folder or a cabench run folder as output, so that no file of yours is replaced")
        if self.is_run_folder():
            try:
                found = json.loads(self.marker.read_text()).get("format")
            except (OSError, ValueError):
                found = None
            if found != FORMAT:
                raise CabenchError(f"{self.marker}: a run folder of another cabench store format ({found}, this one "
                                   f"reads {FORMAT}); give a new output folder")
        refuse_links(path)
        for folder in (self.meta, self.parts, self.cache, self.plots):
            if folder.exists() and not folder.is_dir():
                raise CabenchError(f"{folder}: a file where the run keeps a folder; remove it or choose another output")
        for name in OUTPUT_FILES:
            if (path / name).is_dir():
                raise CabenchError(f"{path / name}: a folder where the run writes a file; remove it or choose another output")

    def prepare(self) -> None:
        """Check the folder, create it with its marker, and prove every folder of the layout writable."""
        self.check()
        if not self.is_run_folder():
            atomic_write_text(self.marker, json.dumps({"format": FORMAT, "written_by": "cabench"}) + "\n")
        for folder in (self.path, self.meta, self.parts, self.cache):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                raise write_failure(folder, error) from None

    def lock(self, shard: tuple[int, int] | None = None) -> RunLock:
        return RunLock(self.meta, self.path, shard)

    def clean_temporaries(self) -> list[Path]:
        """Remove the temporary files that interrupted atomic writes left (only while no other process
        can be writing: the caller holds the folder's lock exclusively)."""
        removed = []
        for path in self.path.rglob("*.tmp"):
            if path.is_file() and TEMPORARY.match(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed
