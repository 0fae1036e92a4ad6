"""Ground-truth work once: a truth cache shared by several methods computes each ground-truth flow,
face and descriptor once (counted by what the computing functions were given), a second run
computes none, numbers do not depend on the cache, and the store's writes are atomic."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.evaluation import evaluate
from metrics import face as face_module
from metrics import flow as flow_module
from metrics.truth import TruthStore, content_key, entry_key
from reports.publish import publish

FRAMES = 5
METRICS = ["flow_gap", "tof", "warp_error", "motion_inheritance", "lmd", "mlmd", "csim"]


@pytest.fixture(scope="module")
def gt_video() -> np.ndarray:
    """160x160 crops around the astronaut's face, the camera panning 2 px right and 1 px down per frame."""
    from skimage import data

    photo = data.astronaut()
    return np.stack([np.ascontiguousarray(photo[30 + t : 190 + t, 140 + 2 * t : 300 + 2 * t]) for t in range(FRAMES)])


def methods(gt: np.ndarray) -> dict[str, np.ndarray]:
    noise = np.random.default_rng(0).integers(-12, 13, gt.shape)
    return {
        "noise": np.clip(gt.astype(np.int16) + noise, 0, 255).astype(np.uint8),
        "blur": np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in gt]),
        "shift": np.stack([np.roll(f, (1, 2), axis=(0, 1)) for f in gt]),
    }


class Counter:
    """Counts the flows and faces computed, each as ground truth's or method's by its pixels."""

    def __init__(self, gt: np.ndarray):
        self.gt_gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in gt]
        self.gt_rgb = list(gt)
        self.flows = {"gt": 0, "pred": 0}
        self.faces = {"gt": 0, "pred": 0}
        self.descriptors = {"gt": 0, "pred": 0}

    def role(self, image: np.ndarray, references: list[np.ndarray]) -> str:
        return "gt" if any(np.array_equal(image, r) for r in references) else "pred"

    def install(self, monkeypatch) -> None:
        original_flow = flow_module.opencv_gray_flow
        detect, in_box, chip = face_module.detect_face, face_module.landmarks_in_box, face_module.face_chip

        def counted_flow(src, dst, method="dis", map_=None):
            for a, b in zip(src, dst):
                both_gt = self.role(a, self.gt_gray) == "gt" and self.role(b, self.gt_gray) == "gt"
                self.flows["gt" if both_gt else "pred"] += 1
            return original_flow(src, dst, method, map_)

        def counted(counts, function):
            def wrapper(image, *args):
                counts[self.role(image, self.gt_rgb)] += 1
                return function(image, *args)

            return wrapper

        monkeypatch.setattr(flow_module, "opencv_gray_flow", counted_flow)
        monkeypatch.setattr(face_module, "detect_face", counted(self.faces, detect))
        monkeypatch.setattr(face_module, "landmarks_in_box", counted(self.faces, in_box))
        monkeypatch.setattr(face_module, "face_chip", counted(self.descriptors, chip))


def run_methods(gt, preds, cache, **options):
    return {name: evaluate(pred=pred, gt=gt, metrics=METRICS, progress=False, batch_size=2, truth_cache=cache, **options).frames
            for name, pred in preds.items()}


def test_three_methods_compute_the_ground_truth_once_and_a_second_run_none(gt_video, tmp_path, monkeypatch):
    preds = methods(gt_video)
    counter = Counter(gt_video)
    counter.install(monkeypatch)
    pairs = FRAMES - 1
    first = run_methods(gt_video, preds, tmp_path / "cache", flow="dis")  # one flow for all (tof's default: Farneback)
    # ground truth, once: flows t-1 -> t, t -> t-1 (occlusion) and first -> t (the flow first -> 1 is
    # the flow 0 -> 1: the same frames, so the same key), and one face per frame
    assert counter.flows["gt"] == 3 * pairs - 1 and counter.faces["gt"] == FRAMES
    assert counter.descriptors["gt"] == FRAMES
    # each method: its flows t-1 -> t and first -> t, its landmarks from the ground truth's box
    assert counter.flows["pred"] == len(preds) * 2 * pairs
    assert counter.faces["pred"] == len(preds) * FRAMES and counter.descriptors["pred"] == len(preds) * FRAMES

    counter.flows, counter.faces, counter.descriptors = {"gt": 0, "pred": 0}, {"gt": 0, "pred": 0}, {"gt": 0, "pred": 0}
    second = run_methods(gt_video, preds, tmp_path / "cache", flow="dis")
    assert counter.flows["gt"] == 0 and counter.faces["gt"] == 0 and counter.descriptors["gt"] == 0
    for name in preds:
        np.testing.assert_array_equal(first[name][METRICS[:1]].to_numpy(), second[name][METRICS[:1]].to_numpy())


def test_numbers_do_not_depend_on_the_cache_or_the_threads(gt_video, tmp_path):
    preds = methods(gt_video)
    previous_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # no worker threads
        serial = run_methods(gt_video, preds, None)
        torch.set_num_threads(2)  # two worker threads (and two torch threads)
        plain = run_methods(gt_video, preds, None)
        cached = run_methods(gt_video, preds, tmp_path / "cache")
        reused = run_methods(gt_video, preds, tmp_path / "cache")
    finally:
        torch.set_num_threads(previous_threads)
    for name in preds:
        columns = [c for c in plain[name].columns if c != "protocol"]
        assert np.isfinite(plain[name]["lmd"]).all() and np.isfinite(plain[name]["tof"].iloc[1:]).all()
        np.testing.assert_array_equal(plain[name][columns].to_numpy(), cached[name][columns].to_numpy())
        np.testing.assert_array_equal(plain[name][columns].to_numpy(), reused[name][columns].to_numpy())
        # torch's reductions may sum in another order on two threads: float32 rounding, no more (relative to
        # each value, and to its column's scale for values near zero, where a sum cancels)
        values, reference = serial[name][columns].to_numpy(), plain[name][columns].to_numpy()
        scale = np.nanmax(np.abs(reference), axis=0)
        close = np.isclose(values, reference, rtol=1e-6, atol=0) | (np.abs(values - reference) <= 1e-6 * scale)
        assert (close | (np.isnan(values) & np.isnan(reference))).all(), (name, np.abs(values - reference).max(axis=0))


def test_flows_can_be_kept_out_of_the_cache(gt_video, tmp_path, monkeypatch):
    counter = Counter(gt_video)
    counter.install(monkeypatch)
    pred = methods(gt_video)["noise"]
    store = TruthStore(tmp_path / "cache", exclude={"flow"})
    for _ in range(2):
        evaluate(pred=pred, gt=gt_video, metrics=["tof", "warp_error", "lmd"], progress=False, truth_cache=store,
                 flow="dis")  # one flow for both (tof's default is Farneback)
    assert not (tmp_path / "cache" / "flow").exists() and (tmp_path / "cache" / "occlusion").is_dir()
    assert counter.flows["gt"] == 2 * (FRAMES - 1) + (FRAMES - 1)  # t-1 -> t twice, t -> t-1 once (occlusion kept)
    assert counter.faces["gt"] == FRAMES
    assert store.counts["flow"] == {"computed": 2 * (FRAMES - 1)}
    assert store.counts["face"] == {"computed": FRAMES, "loaded": FRAMES}


def test_a_changed_ground_truth_frame_recomputes_only_what_it_enters(gt_video, tmp_path):
    pred = methods(gt_video)["noise"]
    store = TruthStore(tmp_path / "cache")
    evaluate(pred=pred, gt=gt_video, metrics=["tof", "lmd"], progress=False, truth_cache=store)
    changed = gt_video.copy()
    changed[2, 0, 0] ^= 1  # one bit of one pixel of frame 2
    store.counts.clear()
    evaluate(pred=pred, gt=changed, metrics=["tof", "lmd"], progress=False, truth_cache=store)
    assert store.counts["face"] == {"computed": 1, "loaded": FRAMES - 1}
    assert store.counts["flow"] == {"computed": 2, "loaded": FRAMES - 3}  # pairs (1,2) and (2,3)
    store.counts.clear()
    evaluate(pred=pred, gt=changed, metrics=["tof"], protocol="insta", progress=False, truth_cache=store)
    assert store.counts["flow"] == {"computed": FRAMES - 1}  # another protocol prepared the frames


def test_the_warp_variant_keys_its_occlusion_masks(gt_video, tmp_path):
    pred = methods(gt_video)["shift"]
    store = TruthStore(tmp_path / "cache")
    columns = ["warp_error", "warp_error_gt"]
    for variant in ("lai", "central"):
        store.counts.clear()
        cached = evaluate(pred=pred, gt=gt_video, metrics=["warp_error"], variant=variant, progress=False, truth_cache=store)
        assert store.counts["occlusion"] == {"computed": FRAMES - 1}  # the other variant's masks are not reused
        alone = evaluate(pred=pred, gt=gt_video, metrics=["warp_error"], variant=variant, progress=False)
        np.testing.assert_array_equal(cached.frames[columns].to_numpy(), alone.frames[columns].to_numpy())
    store.counts.clear()
    evaluate(pred=pred, gt=gt_video, metrics=["warp_error"], variant="lai", progress=False, truth_cache=store)
    assert store.counts["occlusion"] == {"loaded": FRAMES - 1} and store.counts["flow"] == {"loaded": FRAMES - 1}


def test_content_key_depends_on_pixels_salt_and_not_on_layout():
    frame = torch.rand(3, 8, 8)
    key = content_key(frame, "canonical/1")
    assert key == content_key(frame[None].contiguous(memory_format=torch.channels_last)[0], "canonical/1")
    assert key != content_key(frame, "insta/1")
    changed = frame.clone()
    changed[1, 2, 3] += 1e-7
    assert key != content_key(changed, "canonical/1")
    assert entry_key("flow", {"backend": "dis"}, ["a", "b"]) != entry_key("flow", {"backend": "dis"}, ["b", "a"])
    assert entry_key("flow", {"backend": "dis"}, ["a"]) != entry_key("flow", {"backend": "farneback"}, ["a"])


def test_unreadable_entries_are_computed_again(tmp_path):
    store = TruthStore(tmp_path)
    value = {"x": np.arange(1000, dtype=np.float32)}
    store.get("kind", {}, [("a",)], lambda indices: [value])
    path = tmp_path / "kind" / f"{entry_key('kind', {}, ['a'])}.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the array: the zip member's CRC no longer matches
    path.write_bytes(bytes(data))
    again = store.get("kind", {}, [("a",)], lambda indices: [value])
    np.testing.assert_array_equal(again[0]["x"], value["x"])
    assert store.counts["kind"] == {"computed": 2}
    path.write_bytes(b"")
    assert store.get("kind", {}, [("a",)], lambda indices: [value])[0]["x"].shape == (1000,)
    np.testing.assert_array_equal(TruthStore(tmp_path).get("kind", {}, [("a",)], lambda indices: 1 / 0)[0]["x"], value["x"])


def _write_forever(folder: str, seed: int) -> None:
    """Writes one entry again and again (the same values every time, as two processes would)."""
    store = TruthStore(folder)
    value = {"flow": np.arange(2 * 256 * 256, dtype=np.float32).reshape(2, 256, 256)}
    while True:
        store._save(store.folder / "flow" / "entry.npz", value)


def test_writes_are_atomic_under_two_writers_and_sigkill(tmp_path):
    context = multiprocessing.get_context("fork")  # the writers use numpy and files only
    writers = [context.Process(target=_write_forever, args=(str(tmp_path), seed)) for seed in range(2)]
    for writer in writers:
        writer.start()
    try:
        path = tmp_path / "flow" / "entry.npz"
        expected = np.arange(2 * 256 * 256, dtype=np.float32).reshape(2, 256, 256)
        deadline, reads = time.monotonic() + 60, 0
        while reads < 40 and time.monotonic() < deadline:
            if path.exists():
                with np.load(path) as stored:  # a reader never sees a partial entry
                    np.testing.assert_array_equal(stored["flow"], expected)
                reads += 1
        assert reads == 40
    finally:
        for writer in writers:
            os.kill(writer.pid, signal.SIGKILL)  # killed wherever they are, mid-write likely
            writer.join()
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["flow"], expected)
    leftovers = list((tmp_path / "flow").glob(".*.tmp"))
    old = time.time() - 2 * 3600
    for leftover in leftovers:
        os.utime(leftover, (old, old))
    store = TruthStore(tmp_path)
    store.get("flow", {}, [("new",)], lambda indices: [{"flow": expected}])
    assert not list((tmp_path / "flow").glob(".*.tmp"))  # stale temporaries of killed writers are removed


def test_a_three_method_run_computes_the_ground_truth_once_and_a_rerun_none(tmp_path, monkeypatch):
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig
    from benchmark.datasets import open_dataset
    from benchmark.datasets.synthetic import write_sequence
    from benchmark.runner import run_config

    write_sequence(tmp_path / "data", frames=FRAMES, size=160, seed=1, name="talk", progress=False)
    sequence = next(iter(open_dataset(tmp_path / "data", kind="synthetic")))
    counter = Counter(sequence.frames.read(sequence.frames.frame_ids).rgb)
    counter.install(monkeypatch)
    methods = tuple(MethodConfig(name=d, adapter="degraded", settings={"degradation": d}) for d in ("oversmooth", "flicker", "jitter"))
    config = RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(tmp_path / "data"), kind="synthetic"),), methods=methods,
                       metrics=("tof", "warp_error", "motion_inheritance", "lmd"), out=str(tmp_path / "run"), split="all",
                       batch_size=4, options={"flow": "dis"})  # one flow for all (tof's default is Farneback)
    first = run_config(config, progress=False, plots=False, report=False, log=lambda _: None, publish=publish).per_frame
    pairs = FRAMES - 1
    assert counter.flows["gt"] == 3 * pairs - 1 and counter.faces["gt"] == FRAMES
    assert counter.flows["pred"] == 3 * 2 * pairs
    assert (tmp_path / "run" / "cache" / "synthetic" / "talk" / "flow").is_dir()
    counter.flows, counter.faces = {"gt": 0, "pred": 0}, {"gt": 0, "pred": 0}
    again = run_config(config, force=True, progress=False, plots=False, report=False, log=lambda _: None, publish=publish).per_frame
    assert counter.flows["gt"] == 0 and counter.faces["gt"] == 0 and counter.flows["pred"] == 3 * 2 * pairs
    assert np.isfinite(first["lmd"]).all()
    pd.testing.assert_frame_equal(first, again)
