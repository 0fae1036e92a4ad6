"""`cabench train`: train a stage of the reference pipeline (or the official-code variant) under accelerate."""

from __future__ import annotations

import argparse

STAGE_CHOICES = ("vae", "stage2", "stage3", "distill-lcm", "rig")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a stage of the reference ConsistentAvatar pipeline",
        description="Train one stage into OUTPUT (a pipeline folder; each stage updates it). Order for "
                    "the tiny config: vae, stage2, stage3 (then optionally distill-lcm). 'rig' trains the "
                    "official-code DiffusionRig-style variant into OUTPUT/rig. Multi-GPU: accelerate launch "
                    "-m benchmark.cli train ...",
    )
    parser.add_argument("stage", choices=STAGE_CHOICES)
    parser.add_argument("--config", default="tiny", help="tiny or sd15 (default: tiny)")
    parser.add_argument("--data", required=True, help="dataset root: a sequence folder or a folder of them")
    parser.add_argument("--output", required=True, help="pipeline folder to create or update")
    parser.add_argument("--sd-path", help="local Stable Diffusion 1.5 folder (sd15 config)")
    parser.add_argument("--steps", type=int, help="iterations (default: the config's; paper: 3000 / 15000)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the config's; paper: 4)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: the config's; paper: 1e-5 / 1e-4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/train_state/STAGE")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--emotion-db", help="MEAD-style expression database folder <label>/<clip>.npy")
    parser.add_argument("--rig-condition", default="tsd", choices=("tsd", "render"),
                        help="rig only: tsd (the released ConsistentAvatar code) or render (DiffusionRig)")
    parser.add_argument("--size", type=int, help="resize frames to SIZE (default: the config's resolution)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from metrics.device import resolve_device
    from reference.config import get_config
    from reference.data import load_dataset

    args.device = str(resolve_device(args.device))  # "auto" resolved, CUDA checked before the data is read
    config = get_config(args.config)
    data = load_dataset(args.data, "train", size=args.size or config.resolution)
    if data.pose_missing:
        print("note: some frames have no 'pose' in transforms_train.json; zeros are used for them")
    if args.stage == "rig":
        from pathlib import Path

        from reference.rig import RigTrainOptions, train_rig

        losses = train_rig(RigTrainOptions(config=args.config, condition=args.rig_condition, steps=args.steps, batch_size=args.batch_size,
                                           learning_rate=args.lr, seed=args.seed, device=args.device,
                                           resume=args.resume, progress=not args.quiet),
                           data, Path(args.output) / "rig")
    else:
        from reference.training import TrainOptions, train

        options = TrainOptions(
            stage=args.stage, config=args.config, steps=args.steps, batch_size=args.batch_size,
            learning_rate=args.lr, seed=args.seed, mixed_precision=args.mixed_precision,
            gradient_checkpointing=args.gradient_checkpointing, save_every=args.save_every, resume=args.resume,
            device=args.device, sd_path=args.sd_path, progress=not args.quiet,
        )
        losses = train(options, data, args.output, emotion_db=args.emotion_db)
    if losses:
        head = sum(losses[: max(1, len(losses) // 10)]) / max(1, len(losses) // 10)
        tail = sum(losses[-max(1, len(losses) // 10):]) / max(1, len(losses) // 10)
        print(f"{args.stage}: {len(losses)} steps, loss {head:.4f} (first 10%) -> {tail:.4f} (last 10%); "
              f"saved to {args.output}")
    return 0
