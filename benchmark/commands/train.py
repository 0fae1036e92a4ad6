"""`cabench train`: train a stage of the reference pipeline (or the official-code variant) under accelerate."""

from __future__ import annotations

import argparse

STAGE_CHOICES = ("vae", "stage2", "stage3", "distill-lcm", "rig")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a stage of the reference ConsistentAvatar pipeline",
        description="Train one stage into OUTPUT (a pipeline folder; each stage updates it). Order for "
                    "the tiny config: vae, stage2, stage3, then distill-lcm; 'stage3 --ablation NAME' trains "
                    "an ablation's FCSD into OUTPUT/ablations/NAME. 'rig' trains the official-code "
                    "DiffusionRig-style variant into OUTPUT/rig. Several GPUs (or CPU processes): accelerate "
                    "launch -m benchmark.cli train ... (each process takes its share of every step's batch).",
    )
    parser.add_argument("stage", choices=STAGE_CHOICES, help="the stage to train: %(choices)s")
    parser.add_argument("--config", default="tiny", help="tiny or sd15 (default: tiny)")
    parser.add_argument("--data", required=True, help="dataset root: a sequence folder or a folder of them")
    parser.add_argument("--output", required=True, help="pipeline folder to create or update")
    parser.add_argument("--sd-path", help="local Stable Diffusion 1.5 folder (sd15 config; default: none)")
    parser.add_argument("--steps", type=int, help="iterations (default: the config's; paper: 3000 / 15000)")
    parser.add_argument("--batch-size", type=int,
                        help="batch size per process and micro-step (default: the config's; paper: 4)")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1,
                        help="micro-steps per optimizer step (default: 1)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: the config's; paper: 1e-5 / 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"),
                        help="accelerate mixed precision: %(choices)s (default: %(default)s)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass to save memory (default: off)")
    parser.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (default: 0, only at the end)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/train_state/STAGE")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, or auto: accelerate's device for this process, its GPU when there is one "
                             "(default: %(default)s)")
    parser.add_argument("--ablation", choices=("wo_stage2", "wo_normal", "wo_emotion", "wo_aligned_tsd"),
                        help="stage3 / distill-lcm: train the FCSD of this paper ablation (wo_aligned_tsd is "
                             "wo_stage2: the unaligned TSD) into OUTPUT/ablations/NAME (default: none, the full model)")
    parser.add_argument("--stage3-tsd", choices=("tsdm", "ground-truth"),
                        help="stage3 / distill-lcm: the TSD the FCSD trains on: TSDM's aligned TSD of the "
                             "training frames (default, cached) or the ground truth's (default: tsdm)")
    parser.add_argument("--component", default="fcsd", choices=("fcsd", "tsdm"),
                        help="distill-lcm: distil the FCSD or TSDM into an LCM-LoRA (default: %(default)s)")
    parser.add_argument("--lora-rank", type=int,
                        help="distill-lcm: LoRA rank (default: the config's: tiny 8, sd15 64 as the published LCM-LoRA)")
    parser.add_argument("--snr-gamma", type=float,
                        help="stage2 / stage3: Min-SNR-gamma loss weighting, e.g. 5 (default: none, the paper's "
                             "plain noise MSE)")
    parser.add_argument("--tsd-cutoff", type=float,
                        help="the TSD's high-pass cutoff D, set by the stage that makes the folder (vae for tiny) and "
                             "recorded in it (default: the paper's 10, at its 512 px; 1.25 at 64 px is the same "
                             "fraction of the Nyquist frequency)")
    parser.add_argument("--emotion-db",
                        help="MEAD-style expression database folder <label>/<clip>.npy; the pipeline keeps it "
                             "(emotion_db/) and labels frames with it at inference (default: the folder's, else none)")
    parser.add_argument("--rig-condition", default="tsd", choices=("tsd", "render"),
                        help="rig only: tsd (the released ConsistentAvatar code) or render (DiffusionRig) (default: %(default)s)")
    parser.add_argument("--size", type=int, help="resize frames to SIZE (default: the config's resolution)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metrics.device import resolve_device
    from reference.config import get_config
    from reference.data import load_dataset

    device = str(resolve_device(args.device))  # CUDA checked before the data is read
    accelerate_device = None if args.device == "auto" else device  # auto: accelerate places each process
    config = get_config(args.config)
    data = load_dataset(args.data, "train", size=args.size or config.resolution)
    if data.pose_missing:
        print("note: some frames have no 'pose' in transforms_train.json; zeros are used for them")
    if args.stage == "rig":
        from pathlib import Path

        from reference.rig import RigTrainOptions, train_rig

        losses = train_rig(RigTrainOptions(config=args.config, condition=args.rig_condition, steps=args.steps, batch_size=args.batch_size,
                                           learning_rate=args.lr, seed=args.seed, device=device,
                                           resume=args.resume, progress=not args.quiet),
                           data, Path(args.output) / "rig")
    else:
        from reference.training import TrainOptions, train

        options = TrainOptions(
            stage=args.stage, config=args.config, steps=args.steps, batch_size=args.batch_size,
            learning_rate=args.lr, seed=args.seed, mixed_precision=args.mixed_precision,
            gradient_checkpointing=args.gradient_checkpointing, save_every=args.save_every, resume=args.resume,
            device=accelerate_device, sd_path=args.sd_path, progress=not args.quiet,
            gradient_accumulation_steps=args.gradient_accumulation_steps, ablation=args.ablation,
            stage3_tsd=args.stage3_tsd, component=args.component, lora_rank=args.lora_rank,
            snr_gamma=args.snr_gamma, tsd_cutoff=args.tsd_cutoff,
        )
        losses = train(options, data, args.output, emotion_db=args.emotion_db)
    if losses and is_main_process():
        head = sum(losses[: max(1, len(losses) // 10)]) / max(1, len(losses) // 10)
        tail = sum(losses[-max(1, len(losses) // 10):]) / max(1, len(losses) // 10)
        print(f"{args.stage}: {len(losses)} steps, loss {head:.4f} (first 10%) -> {tail:.4f} (last 10%); "
              f"saved to {args.output}")
    return 0


def is_main_process() -> bool:
    """Under torchrun / accelerate launch only rank 0 prints the summary."""
    import os

    return os.environ.get("RANK", "0") == "0"
