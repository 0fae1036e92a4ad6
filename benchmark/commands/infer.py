"""`cabench infer`: render a sequence's frames with a reference-pipeline checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="render frames with the reference ConsistentAvatar pipeline",
        description="Read a sequence folder (INSTA / cabench synth layout: stage1/rgb, stage1/normal, "
                    "flame/exp, transforms_SPLIT.json with pose) and write one PNG per frame to OUTPUT.",
    )
    parser.add_argument("--checkpoint", default="tiny", help="pipeline folder, or 'tiny' for the shipped one")
    parser.add_argument("--data", required=True, help="sequence folder")
    parser.add_argument("--output", required=True, help="folder for the rendered PNG frames")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"))
    parser.add_argument("--scheduler", default="lcm", choices=("lcm", "ddim", "ddpm"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--ablation", choices=("wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd"))
    parser.add_argument("--emotion-db", help="MEAD-style expression database to label frames (default: neutral)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.io import write_frames
    from metrics.device import resolve_device
    from reference import render_sequence
    from reference.data import load_sequence

    args.device = str(resolve_device(args.device))  # "auto" resolved, CUDA checked before the data is read
    data = load_sequence(args.data, args.split)
    if data.pose_missing:
        print("note: frames without 'pose' in the transforms file get zero pose")
    emotion = None
    if args.emotion_db:
        from reference.emotion import ExpressionDatabase

        emotion = ExpressionDatabase.from_folder(args.emotion_db).label(data.expression)
    frames = render_sequence(args.checkpoint, data.rgb, data.normal, data.pose, data.expression, emotion=emotion,
                             ablation=args.ablation, scheduler=args.scheduler, steps=args.steps, seed=args.seed,
                             device=args.device, batch_size=args.batch_size, progress=not args.quiet)
    write_frames(Path(args.output), frames, data.frame_ids)
    print(f"wrote {len(frames)} frames to {args.output}")
    return 0
