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

PROXY_VAE_ROW = "INSTA (stage-1 proxy) -> VAE"

DEMO_SEQUENCES = 2
DEMO_FRAMES = 64     # test split = the last quarter: 16 frames per sequence
DEMO_SIZE = 128
DEMO_MOTION = "v2"   # the synthetic motion generator (benchmark.datasets.synthetic_motion): stationary, with emotions
STAGE1_ROW = "INSTA (stage-1 proxy)"
SCORED_ON_TRAIN = ("psnr", "ssim")  # the metrics of the training-frame table


def make_data(root: Path, sequences: int = DEMO_SEQUENCES, frames: int = DEMO_FRAMES, size: int = DEMO_SIZE,
              seed: int = 0, progress: bool = True, motion_version: str = DEMO_MOTION) -> Path:
    """The synthetic sequences ``talk0``, ``talk1``, ... under ``root`` (kept if already written with
    these frames, seed and motion generator)."""
    import json

    from benchmark.datasets.synthetic import write_sequence

    for index in range(sequences):
        name = f"talk{index}"
        transforms = root / name / "transforms.json"
        if transforms.exists():
            try:
                header = json.loads(transforms.read_text())
                if (len(header.get("frames", [])) == frames and header.get("seed", seed + index) == seed + index
                        and header.get("motion", "v1") == motion_version):
                    continue
            except (OSError, json.JSONDecodeError):
                pass
        write_sequence(root, frames=frames, size=size, seed=seed + index, name=name, progress=progress,
                       motion_version=motion_version, overwrite=True)
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
    if checkpoint and "proxy_vae" in adapters:  # the floor a latent model must beat
        methods.append(MethodConfig(name=PROXY_VAE_ROW, adapter="proxy_vae", settings={"checkpoint": checkpoint}))
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


def train_config(config: RunConfig, out: Path) -> RunConfig:
    """The same run on the training frames, for the rows scored there: the stage-1 proxy, its VAE round
    trip and the reference model's rows (the degradations say nothing about training), PSNR and SSIM."""
    rows = [m for m in config.methods if m.adapter in ("proxy_vae", "consistentavatar")]
    if any(m.adapter == "insta" for m in config.methods):  # INSTA's own renders are of the test split only
        rows.insert(0, MethodConfig(name=STAGE1_ROW, adapter="proxy_vae", settings={"vae": False}))
    return RunConfig(datasets=config.datasets, methods=tuple(rows), metrics=SCORED_ON_TRAIN, out=str(out),
                     protocol=config.protocol, device=config.device, batch_size=config.batch_size, split="train")


def write_extra_tables(report, train_report, log: Callable[[str], None]) -> None:
    """``heldout_vs_train.md`` and ``paired.md`` (:mod:`benchmark.demo_tables`) into the run folder."""
    from baselines.consistentavatar import ABLATION_ROWS
    from benchmark.demo_tables import CAPTION, paired_table, split_table

    texts = {}
    if train_report is not None:
        texts["heldout_vs_train.md"] = ("Mean on the held-out test frames and on the training frames.\n\n"
                                        + split_table(report.per_frame, train_report.per_frame))
    full = ABLATION_ROWS[None]
    if full in set(report.per_frame["method"]):
        shown = [m for m in dict.fromkeys(report.per_frame["method"])
                 if m in set(ABLATION_ROWS.values()) | {STAGE1_ROW, PROXY_VAE_ROW}]
        texts["paired.md"] = (f"Each row minus {full} on the same held-out frames (block bootstrap, 95% interval), "
                              f"best first.\n\n" + paired_table(report.per_frame, full, shown))
    for name, text in texts.items():
        atomic_write_text(report.out / name, f"{CAPTION}\n\n{text}")
        log(f"wrote {report.out / name}")


def run_demo(out: str | Path = "runs/demo", frames: int = DEMO_FRAMES, size: int = DEMO_SIZE,
             sequences: int = DEMO_SEQUENCES, seed: int = 0, device: str = "cpu", force: bool = False,
             progress: bool = True, log: Callable[[str], None] = print, publish: Publisher | None = None,
             train_frames: bool = True):
    """Make the data, run every offline method and metric on it, write the report (through ``publish``,
    see :func:`benchmark.runner.run_config`); returns the RunReport. ``train_frames``: also score the
    reference rows on the training frames (a second run in ``OUT/train_frames``) for
    ``heldout_vs_train.md``."""
    from benchmark.demo_tables import CAPTION
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
        reference = reference_checkpoint() is not None
        notes = [CAPTION] if reference else []
        report = run_config(config, force=force, progress=progress, shard=(0, 1), log=log,
                            publish=publish, adapters=adapters, notes=notes)
        train_report = None
        if train_frames and reference:
            log("scoring the reference rows on the training frames too (OUT/train_frames)")
            train_config_, train_adapters = open_adapters(train_config(config, out / "train_frames"))
            train_report = run_config(train_config_, force=force, progress=progress, shard=(0, 1), log=log,
                                      publish=None, adapters=train_adapters)
        if reference:
            write_extra_tables(report, train_report, log)
        return report
