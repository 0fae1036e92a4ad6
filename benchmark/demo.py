"""`cabench demo`: the whole benchmark offline, on a CPU, in minutes, from data the project makes.

What it does, in order:
1. writes the synthetic dataset (``cabench synth``'s sequences, different seeds) under ``OUT/data``
   (kept when already there, so a rerun reuses it);
2. builds a run config from what this installation can run offline, looked up in the registries
   rather than listed by hand: the stage-1 proxy (read through the INSTA adapter, as INSTA's own
   test renders would be), every synthetic degradation the ``degraded`` adapter offers, and the
   reference ConsistentAvatar pipeline's tiny checkpoint when the reference package ships one:
   the full model, ``wo_lcm``, and each ablation the checkpoint has a trained variant for (rows
   of the paper; the adapter loads the pipeline before rendering, so its time per frame excludes
   loading). ``wo_aligned_tsd`` is the same trained model as ``wo_stage2`` (an alias,
   :mod:`reference.ablations`), so it is rendered once, as the "w/o stage2" row, which ``--paper``
   tables set beside both of the paper's names for it. The shipped checkpoint was trained on the train split of exactly these sequences
   (the demo's defaults), so its rows score it on their held-out test frames, the paper's
   per-subject protocol;
   every registered metric, those that cannot run here (absent weights) recorded as missing with
   the reason;
3. runs it with :func:`benchmark.runner.run_config` (resumable: a second demo reuses every
   stored number) and writes the tables, plots and ``report.html`` into ``OUT``.
``OUT`` is made a run folder before the data is written into it, so ``OUT/data`` and
``OUT/demo.toml`` are the run's own (an existing folder of other files is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import DatasetConfig, MethodConfig, RunConfig, to_toml
from benchmark.results.files import atomic_write_text
from benchmark.threads import one_thread_unless_set

if TYPE_CHECKING:
    from benchmark.engine.outputs import Publisher

DEMO_SEQUENCES = 2
DEMO_FRAMES = 64     # test split = the last quarter: 16 frames per sequence
DEMO_SIZE = 128
STAGE1_ROW = "INSTA (stage-1 proxy)"


def make_data(root: Path, sequences: int = DEMO_SEQUENCES, frames: int = DEMO_FRAMES, size: int = DEMO_SIZE,
              seed: int = 0, progress: bool = True) -> Path:
    """The synthetic sequences ``talk0``, ``talk1``, ... under ``root`` (kept if already written)."""
    import json

    from benchmark.datasets.synthetic import write_sequence

    for index in range(sequences):
        name = f"talk{index}"
        transforms = root / name / "transforms.json"
        if transforms.exists():
            try:
                header = json.loads(transforms.read_text())
                if len(header.get("frames", [])) == frames and header.get("seed", seed + index) == seed + index:
                    continue
            except (OSError, json.JSONDecodeError):
                pass
        write_sequence(root, frames=frames, size=size, seed=seed + index, name=name, progress=progress)
    return root


def reference_checkpoint() -> str | None:
    """The reference pipeline's shipped tiny checkpoint, when this installation has one."""
    try:
        from reference.render import TINY_CHECKPOINT
    except ImportError:
        return None
    return str(TINY_CHECKPOINT) if (Path(TINY_CHECKPOINT) / "model_index.json").is_file() else None


def demo_methods() -> list[MethodConfig]:
    """The methods this installation can run offline (see the module docstring)."""
    import baselines

    adapters = set(baselines.list_adapters())
    methods = []
    if "insta" in adapters:
        methods.append(MethodConfig(name=STAGE1_ROW, adapter="insta", settings={"experiment": "stage1_proxy"}))
    checkpoint = reference_checkpoint()
    if checkpoint and "consistentavatar" in adapters:
        from baselines.consistentavatar import ABLATION_ROWS
        from reference.ablations import ALIASES, trained_variant, trained_variants

        trained = set(trained_variants(checkpoint))
        for ablation, row in ABLATION_ROWS.items():  # the full model and its trained ablations: rows of the paper
            if ablation in ALIASES or trained_variant(ablation) not in trained | {None}:
                continue
            settings = {"checkpoint": checkpoint} if ablation is None else {"checkpoint": checkpoint, "ablation": ablation}
            methods.append(MethodConfig(name=row, adapter="consistentavatar", settings=settings))
    if "degraded" in adapters:
        from baselines.degradations import DEFAULT_STRENGTH, ROW

        for degradation in DEFAULT_STRENGTH:
            methods.append(MethodConfig(name=ROW[degradation], adapter="degraded", settings={"degradation": degradation}))
    return methods


def demo_metrics() -> list[str]:
    """Every registered metric (the runner records those that cannot run here as missing)."""
    from metrics import registry

    return registry.list_metrics()


def demo_config(out: Path, data: Path, device: str = "cpu") -> RunConfig:
    return RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(data), kind="synthetic"),),
                     methods=tuple(demo_methods()), metrics=tuple(demo_metrics()), out=str(out), protocol=("canonical",),
                     device=device, batch_size=8, split="test")


def run_demo(out: str | Path = "runs/demo", frames: int = DEMO_FRAMES, size: int = DEMO_SIZE,
             sequences: int = DEMO_SEQUENCES, seed: int = 0, device: str = "cpu", force: bool = False,
             progress: bool = True, log: Callable[[str], None] = print, publish: Publisher | None = None):
    """Make the data, run every offline method and metric on it, write the report (through ``publish``,
    see :func:`benchmark.runner.run_config`); returns the RunReport."""
    from benchmark.engine.methods import open_adapters
    from benchmark.runner import claim_folder, run_config
    from metrics.errors import CabenchError

    if frames < 8:
        raise CabenchError(f"--frames must be at least 8 (the test split is the last quarter), got {frames}")
    if sequences < 1:
        raise CabenchError(f"--sequences must be at least 1, got {sequences}")
    with one_thread_unless_set():
        out = claim_folder(out).path
        log(f"writing the synthetic dataset ({sequences} sequences x {frames} frames, {size}x{size}) to {out / 'data'}")
        data = make_data(out / "data", sequences=sequences, frames=frames, size=size, seed=seed, progress=progress)
        config = demo_config(out, data, device=device)
        if not config.methods:
            raise CabenchError("demo: no method can run offline in this installation (no baselines adapters found)")
        config, adapters = open_adapters(config)  # its paths absolute; each adapter built once
        atomic_write_text(out / "demo.toml", to_toml(config))
        log(f"methods: {', '.join(m.name for m in config.methods)}")
        log(f"metrics: {', '.join(config.metrics)}")
        return run_config(config, force=force, progress=progress, shard=(0, 1), log=log, publish=publish,
                          adapters=adapters)
