"""`cabench synth`: write the synthetic talking-head dataset (offline, from a photo in scikit-image)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write the synthetic talking-head dataset (INSTA layout)",
        description="Make a talking-head sequence from skimage.data.astronaut() with known head pose, "
        "expressions, landmarks, normals and a coarse stage-1 proxy, in INSTA's folder layout.",
    )
    parser.add_argument("--out", required=True, help="output folder; the sequence goes to OUT/NAME")
    parser.add_argument("--frames", type=int, default=120, help="number of frames (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="motion and proxy-noise seed (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate recorded (default: %(default)s)")
    parser.add_argument("--name", default="astronaut", help="sequence name (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a sequence cabench synth wrote before (an unfinished one is always replaced)")
    parser.add_argument("--audio", action="store_true",
                        help="also write audio.wav: 16 kHz speech whose loudness follows the mouth opening")
    parser.add_argument("--audio-shift", type=int, default=0, metavar="FRAMES",
                        help="with --audio, also write audio_shifted.wav delayed by FRAMES frames (default: none)")
    parser.add_argument("--motion", default="v1", choices=("v1", "v2"),
                        help="motion generator: v1 drifts (the calibration inputs'), v2 is stationary (poses and "
                             "expressions recur; frames carry emotion labels) (default: %(default)s)")
    parser.add_argument("--emotion-reference", action="store_true",
                        help="write the labelled expression reference set of v2's emotion classes to OUT/NAME "
                             "(<label>/clip<k>.npy, for --emotion-db) instead of a sequence")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.datasets.synthetic import write_sequence

    if args.emotion_reference:
        from pathlib import Path

        from benchmark.datasets.synthetic_motion import write_emotion_reference

        folder = write_emotion_reference(Path(args.out) / args.name, seed=args.seed)
        print(f"wrote the emotion reference set to {folder}")
        return 0
    root = write_sequence(args.out, frames=args.frames, size=args.size, seed=args.seed, fps=args.fps,
                          name=args.name, progress=not args.quiet, overwrite=args.overwrite,
                          audio=args.audio, audio_shift=args.audio_shift, motion_version=args.motion)
    print(f"wrote {args.frames} frames to {root}")
    return 0
