"""Every registered metric honours the registry's contract on a small batch of a real photo (scikit-image's
astronaut, her face in view): one value per frame for each of its columns, NaN only where its kind allows
(a temporal metric's first frame), values inside its ``value_range``, identical inputs scoring at least
as well as damaged ones (strictly, for its headline column), and the same numbers twice. LPIPS, tLP and
DECA and ArcFace run on weights the tests create (random AlexNet trunk, random DECA encoder, random ArcFace ONNX)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from benchmark import evaluate
from metrics import registry

FRAMES, SIZE = 4, 192


@pytest.fixture(scope="module")
def clip() -> dict[str, np.ndarray]:
    """A face moving by a few pixels per frame, and the same frames blurred and noised."""
    photo = data.astronaut()
    gt = np.stack([cv2.resize(photo[20 + 3 * i: 276 + 3 * i, 92 + 2 * i: 348 + 2 * i], (SIZE, SIZE),
                              interpolation=cv2.INTER_AREA) for i in range(FRAMES)])
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in gt]).astype(np.float64)
    damaged = np.clip(blurred + np.random.default_rng(0).normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    return {"gt": gt, "damaged": damaged}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Test-made weights: an AlexNet trunk where torchvision looks (TORCH_HOME) and a DECA checkpoint."""
    import torchvision

    from tests.test_face import deca_state

    root = tmp_path_factory.mktemp("weights")
    (root / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), root / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    from tests.arcface_recipe import arcface_onnx

    arcface_onnx(root / "hub" / "checkpoints" / "w600k_r50.onnx")  # a random ArcFace for csim_arcface
    deca = root / "deca_model.tar"
    torch.save({"E_flame": deca_state(), "E_detail": {}, "D_detail": {}}, deca)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root))
        patch.delenv("CABENCH_WEIGHTS", raising=False)
        yield {"deca_weights": str(deca)}


def _options(name: str, weights: dict) -> dict:
    return {"deca_weights": weights["deca_weights"]} if name.startswith("deca") else {}


# lip-sync metrics score frames against the sequence's audio, which this clip has none of (checked by
# tests/test_lipsync.py and tests/test_calibration_lipsync.py); akd runs FAN's 4 hourglasses per face, seconds
# per frame on a CPU (checked by tests/test_calibration_akd.py, the identical-frames case included); set
# metrics (FID, KID: one value per set of frames) have their own tests: tests/test_set_metrics.py
CONTRACT_METRICS = [m for m in registry.list_metrics()
                    if "audio" not in registry.get(m).needs and m != "akd" and registry.get(m).kind != "set"]


@pytest.mark.parametrize("name", CONTRACT_METRICS)
def test_every_metric_honours_the_registry_contract(name, clip, weights):
    spec = registry.get(name)
    options = _options(name, weights)
    assert spec.unavailable_reason(options) is None, spec.unavailable_reason(options)

    def run(pred: np.ndarray):
        result = evaluate(pred=pred, gt=clip["gt"], metrics=[name], batch_size=3, progress=False, **options)
        assert result.missing == {}
        return result.frames

    damaged, again, identical = run(clip["damaged"]), run(clip["damaged"]), run(clip["gt"])
    columns = list(spec.output_columns())
    assert list(damaged.columns) == ["frame", "protocol", *columns] and list(damaged["frame"]) == list(range(FRAMES))
    np.testing.assert_array_equal(damaged[columns].to_numpy(), again[columns].to_numpy())  # NaN where NaN

    low, high = spec.value_range
    slack = 1e-9  # floating-point rounding (a cosine of identical descriptors comes out as 1 + 2e-16)
    for frame in (damaged, identical):
        for column in columns:
            values = frame[column].to_numpy(dtype=np.float64)
            defined = ~np.isnan(values)
            expected = np.arange(FRAMES) > 0 if spec.kind == "temporal" else np.ones(FRAMES, bool)
            np.testing.assert_array_equal(defined, expected, err_msg=f"{column}: NaN policy of kind {spec.kind}")
            inside = (values[defined] >= low - slack) & (values[defined] <= high + slack)
            assert inside.all(), (column, values, spec.value_range)

    for column in columns:
        if not spec.scores(column) or name == "cpbd":  # no-reference sharpness: the damage's noise reads as edges
            continue
        best, worse = np.nanmean(identical[column]), np.nanmean(damaged[column])
        better = best > worse if spec.higher_is_better else best < worse
        as_good = best >= worse if spec.higher_is_better else best <= worse
        assert better if column == spec.headline else as_good, (column, best, worse)


def test_runtime_is_registered_but_not_computed():
    spec = registry.get("time_s")
    assert spec.kind == "runtime" and spec.unit == "s" and not spec.higher_is_better
    assert "time_s" not in registry.list_metrics() and registry.column_spec("time_s") is spec
    with pytest.raises(registry.CabenchError, match="measured while a method renders"):
        registry.create("time_s")
