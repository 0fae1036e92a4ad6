"""Computing what a run has not stored yet, pair by pair, into the part store.

For each part of a pair (:class:`PairPlan`), a rerun:
- reuses a complete part stored under the same fingerprint (nothing recomputed; ``force=True``
  recomputes everything);
- continues a partial part of a per-frame metric from the frames it lacks; a temporal metric
  (kind ``temporal``: it streams over frame pairs from the start, its values depend on the frames
  before) starts again from the first frame;
- records a metric that cannot run as missing, with the reason (checked on every run: weights may
  have arrived since).
The method is rendered (or its stored frames opened) only when some part of the pair needs
computing, once for all the run's protocols; its measured time per frame is stored as the pair's
runtime part. Rows reach the store batch by batch (``evaluate``'s ``on_rows``), so an interruption
loses at most the batch in flight. What the metrics derive from the ground truth alone (flows, faces,
descriptors, ...) is kept in the run's truth cache, ``<out>/cache/<dataset>/<sequence>/``, keyed by
content (``metrics.truth``), so the methods of a sequence, and later runs, compute it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from benchmark.config import RunConfig
from benchmark.engine.parts import PairPlan
from benchmark.engine.plan import SubsetFrames, landmarks_of, sequence_audio, uses_mask
from benchmark.engine.samples import write_samples
from benchmark.io import FrameSource
from benchmark.results.files import atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.schema import TIME_COLUMN
from benchmark.results.store import Part
from metrics import registry


class PartComputer:
    """Computes the parts of a run's pairs that are not stored (see the module docstring)."""

    def __init__(self, config: RunConfig, folder: RunFolder, metrics: list[str], options: dict[str, dict[str, Any]],
                 force: bool = False, progress: bool = True, log: Callable[[str], None] = print):
        self.config = config
        self.folder = folder
        self.metrics = metrics
        self.options = options
        self.force = force
        self.progress = progress
        self.log = log
        self.computed = 0  # (frame, metric) values computed by this process
        self.reused = 0    # (frame, metric) values found stored
        self.computed_parts: list[str] = []  # "dataset/sequence/method/protocol/metric" of the parts it computed

    def _parts(self, plan: PairPlan) -> dict[tuple[str, str], Part]:
        stored = plan.stored
        return {key: Part(self.folder.part_folder(stored.dataset, stored.sequence, stored.method, key[0]), key[1],
                          fingerprint, plan.identities[key])
                for key, fingerprint in stored.parts.items()}

    def run_pair(self, plan: PairPlan, device: str) -> None:
        """Compute what is not stored yet for one pair (every protocol's metrics, and the runtime)."""
        parts = self._parts(plan)
        full: dict[str, list[str]] = {}
        rest: dict[str, list[str]] = {}
        for (protocol, name), part in parts.items():
            reason = plan.unavailable.get((protocol, name))
            if reason:
                if part.missing != reason:
                    part.mark_missing(reason)
            elif part.complete and not self.force:
                self.reused += int(part.state.get("frames", 0))
            elif self.force or registry.get(name).kind in ("temporal", "sequence") or part.rows().empty:
                full.setdefault(protocol, []).append(name)
            else:
                rest.setdefault(protocol, []).append(name)
        stored = plan.stored
        pair_folder = self.folder.pair_folder(stored.dataset, stored.sequence, stored.method)
        runtime = None
        if stored.runtime is not None:
            runtime = Part(pair_folder, TIME_COLUMN, stored.runtime, plan.runtime_identity)
        if not full and not rest and (runtime is None or (runtime.complete and not self.force)):
            return
        output = plan.method.output()
        atomic_write_text(pair_folder / "method.json", json.dumps(
            {"method": stored.method, "alignment": output.alignment, "align": sorted(self.config.align)},
            indent=1, default=str) + "\n")
        if runtime is not None:
            seconds = output.seconds_per_frame
            times = pd.DataFrame({"frame": plan.ids, TIME_COLUMN: [float(seconds)] * len(plan.ids)} if seconds is not None
                                 else {"frame": pd.Series(dtype=int), TIME_COLUMN: pd.Series(dtype=float)})
            runtime.write_all(times)
        for protocol in dict.fromkeys([*rest, *full]):
            if rest.get(protocol):
                self._evaluate(plan, output.frames, protocol, rest[protocol], parts, device, keep=True)
            if full.get(protocol):
                self._evaluate(plan, output.frames, protocol, full[protocol], parts, device, keep=False)
        write_samples(output.frames, plan.pair.sequence.frames, plan.ids, pair_folder / "samples.png",
                      pair_folder.parent / "gt_samples.png")

    def _evaluate(self, plan: PairPlan, pred: FrameSource, protocol: str, names: list[str],
                  parts: dict[tuple[str, str], Part], device: str, keep: bool) -> None:
        """Evaluate ``names`` under ``protocol`` on the frames their parts lack; ``keep=False``: from scratch."""
        from benchmark.evaluation import evaluate

        mine = {name: parts[(protocol, name)] for name in names}
        done: dict[str, set[int]] = {}
        for name, part in mine.items():
            part.begin(keep=keep)
            stored = part.rows() if keep else pd.DataFrame()
            done[name] = set() if stored.empty else set(int(f) for f in stored["frame"])
            self.reused += len(done[name])
        everywhere = set.intersection(*done.values()) if done else set()
        ids = [i for i in plan.ids if i not in everywhere]
        columns = {name: registry.get(name).output_columns() for name in names}

        def store(chunk: pd.DataFrame) -> None:
            for name, part in mine.items():
                present = [c for c in columns[name] if c in chunk]
                rows = chunk.loc[~chunk["frame"].isin(done[name]), ["frame", *present]]
                if present and len(rows):
                    part.append(rows)
                    self.computed += len(rows)

        missing: dict[str, str] = {}
        if ids:
            sequence = plan.pair.sequence
            gt = SubsetFrames(sequence.frames, ids)
            mask = SubsetFrames(sequence.mask, ids) if uses_mask(self.config, sequence) else None
            landmarks = landmarks_of(sequence, gt.frame_ids)
            options = {name: self.options[name] for name in names}  # per metric, as split at load
            truth_cache = self.folder.truth_cache(plan.stored.dataset, plan.stored.sequence)
            audio = sequence_audio(sequence, gt.frame_ids) if any("audio" in registry.get(n).needs for n in names) else None
            result = evaluate(pred=SubsetFrames(pred, ids), gt=gt, metrics=names, protocol=protocol, mask=mask, device=device,
                              batch_size=self.config.batch_size, align=self.config.align or None,
                              progress=self.progress, annotations=None if landmarks is None else {"landmarks": landmarks},
                              on_rows=store, truth_cache=truth_cache, audio=audio, keep_rows=False, **options)
            missing = result.missing
        for name, part in mine.items():
            if name in missing:
                part.mark_missing(missing[name])
            else:
                part.finish()
            if ids:
                self.computed_parts.append(f"{plan.stored.label}/{protocol}/{name}")

    def run(self, plans: list[PairPlan], device: str) -> None:
        for n, plan in enumerate(plans, 1):
            self.log(f"[{n}/{len(plans)}] {plan.stored.label}")
            self.run_pair(plan, device)
