"""`cabench infer`: render a sequence's frames with a reference-pipeline checkpoint.

Under ``accelerate launch`` or ``torchrun --nproc_per_node N -m benchmark.cli infer ...`` the frames
are rendered across the processes (each on its own device) and the main process writes them; the
frames equal a single-process run's (frame i's noise comes from seed + i). On a CPU it renders on one
torch thread unless ``OMP_NUM_THREADS`` is set (:mod:`benchmark.threads`, as ``demo`` and ``time``).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="render frames with the reference ConsistentAvatar pipeline",
        description="Read a sequence folder (INSTA / cabench synth layout: stage1/rgb, stage1/normal, "
                    "flame/exp, transforms_SPLIT.json with pose) and write one PNG per frame to OUTPUT. "
                    "Runs across processes under accelerate launch / torchrun.",
    )
    parser.add_argument("--checkpoint", default="tiny", help="pipeline folder, or 'tiny' for the shipped one (default: %(default)s)")
    parser.add_argument("--data", required=True, help="sequence folder")
    parser.add_argument("--output", required=True, help="folder for the rendered PNG frames")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"), help="frames to render (default: %(default)s)")
    parser.add_argument("--scheduler", default="lcm",
                        help="sampler: lcm, ddim, ddpm, euler, euler_a, dpmpp or unipc (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampling steps (default: the sampler's usual count: LCM 10, DDIM 50; "
                             "wo_lcm samples with DDIM)")
    parser.add_argument("--ablation", choices=("wo_stage2", "wo_lcm", "wo_normal", "wo_emotion", "wo_aligned_tsd"),
                        help="render a paper ablation: the checkpoint's variant trained without that input "
                             "(default: the full model)")
    parser.add_argument("--ablation-mode", default="trained", choices=("trained", "zero-input"),
                        help="zero-input: switch the input off in the full model instead (a diagnosis, not the "
                             "paper's ablation) (default: %(default)s)")
    parser.add_argument("--emotion", default=None, help="one emotion label for every frame (default: neutral)")
    parser.add_argument("--emotion-db", help="MEAD-style expression database to label each frame (overrides --emotion; default: none)")
    parser.add_argument("--seed", type=int, default=0, help="frame i's noise comes from seed + i (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N, or auto (accelerate's device for this process) (default: %(default)s)")
    parser.add_argument("--dtype", default=None, choices=("fp32", "fp16", "bf16"),
                        help="dtype the models run in (default: as loaded, fp32)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per batch (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.threads import one_thread_unless_set
    from reference.render import process_state, resolve_device

    device = resolve_device(args.device, "--device")  # CUDA checked before the data is read; auto: this process's
    with one_thread_unless_set(cpu=device.type == "cpu"):  # the CPU thread policy of demo and time
        return _render(args, process_state(args.device))


def _render(args: argparse.Namespace, state) -> int:
    from pathlib import Path

    from benchmark.io import write_frames
    from reference import render_sequence
    from reference.data import load_sequence

    data = load_sequence(args.data, args.split)
    if data.pose_missing and state.is_main_process:
        print("note: frames without 'pose' in the transforms file get zero pose")
    emotion = args.emotion
    if args.emotion_db:
        from reference.emotion import ExpressionDatabase

        emotion = ExpressionDatabase.from_folder(args.emotion_db).label(data.expression)
    frames = render_sequence(args.checkpoint, data.rgb, data.normal, data.pose, data.expression, emotion=emotion,
                             ablation=args.ablation, ablation_mode=args.ablation_mode, scheduler=args.scheduler,
                             steps=args.steps, seed=args.seed,
                             device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                             progress=not args.quiet, across_processes=True)
    if state.is_main_process:
        write_frames(Path(args.output), frames, data.frame_ids)
        processes = f" ({state.num_processes} processes)" if state.num_processes > 1 else ""
        print(f"wrote {len(frames)} frames to {args.output}{processes}")
    state.wait_for_everyone()
    return 0
