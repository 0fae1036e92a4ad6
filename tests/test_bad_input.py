"""Bad input anywhere is one line and exit status 2, never a traceback: devices, folders that cannot
be listed, library warnings that would print first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import evaluate
from benchmark.cli import main
from benchmark.io import write_frames
from metrics.device import check_device, resolve_device
from metrics.errors import CabenchError


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_the_device_names_the_harness_takes(name):
    assert check_device(name) == name


@pytest.mark.parametrize("name", ["mps", "meta", "xla", "cuda:", "cuda:-1", "CPU", "", "tpu", 0, None])
def test_other_devices_are_refused_with_the_allowed_names(name):
    with pytest.raises(CabenchError, match=r"--device .*choose cpu, cuda, cuda:N or auto"):
        check_device(name)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(CabenchError, match="--device cuda:1: no CUDA device is available"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(CabenchError, match="there are"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_evaluate_refuses_a_meta_device():
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(CabenchError, match="--device 'meta'"):
        evaluate(frames, frames, metrics=["l2"], device="meta", progress=False)


@pytest.mark.parametrize("command", [
    ["eval", "--gt", "g", "--pred", "a=p"],
    ["demo", "--out", "o"],
    ["train", "stage2", "--data", "d", "--output", "o"],
    ["infer", "--data", "d", "--output", "o"],
    ["time", "--out", "o"],
])
@pytest.mark.parametrize("device", ["mps", "meta"])
def test_every_command_that_takes_a_device_checks_it_first(tmp_path, capsys, monkeypatch, command, device):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--device", device]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cabench: error: --device {device!r}: not a device this harness runs on; choose cpu, cuda, cuda:N or auto"]
    assert not any(tmp_path.iterdir())  # nothing was created


def test_a_folder_that_cannot_be_listed_is_one_line(tmp_path, capsys, monkeypatch, photos):
    frames = photos["astronaut"][None, :32, :32]
    write_frames(tmp_path / "gt", frames)
    write_frames(tmp_path / "pred", frames)
    locked = tmp_path / "pred"
    real_iterdir = Path.iterdir

    def iterdir(self):  # tests run as root, where chmod does not stop reading: the refusal is simulated
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={locked}", "--metrics", "l2", "--quiet",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cabench: error: {locked}: cannot list the folder (Permission denied)"]


def test_a_dataset_folder_that_cannot_be_listed_is_one_line(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "data"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    config = tmp_path / "run.toml"
    config.write_text('[run]\nmetrics = ["l2"]\n[[datasets]]\npath = "data"\n[[methods]]\nname = "a"\nframes = "f"\n')
    assert main(["run", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cabench: error: {locked}: cannot list the folder (Permission denied)"]


def test_any_other_os_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    from benchmark.commands import weights

    def refuse(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "somewhere"))

    monkeypatch.setattr(weights, "run", refuse)
    assert main(["weights"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"cabench: error: {tmp_path / 'somewhere'}: Permission denied"]


def test_ffmpeg_messages_do_not_print_before_the_error_but_are_kept_for_debug(tmp_path, capfd):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))  # an mp4 header with nothing behind it
    write_frames(tmp_path / "gt", np.zeros((2, 16, 16, 3), np.uint8))
    args = ["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={video}", "--metrics", "l2", "--quiet",
            "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert capfd.readouterr().err.strip().splitlines() == [f"cabench: error: {video}: OpenCV cannot open this video"]
    with pytest.warns(RuntimeWarning, match="moov atom not found"), pytest.raises(CabenchError):
        main([*args, "--debug"])  # FFmpeg's own line (written by the C library) comes back as a warning


def test_python_warnings_of_libraries_are_kept_for_debug(monkeypatch, capsys):
    import warnings

    from benchmark.commands import weights

    def warn_then_fail(args):
        warnings.warn("torchvision: the parameter 'pretrained' is deprecated", UserWarning, stacklevel=2)
        raise CabenchError("the real problem")

    monkeypatch.setattr(weights, "run", warn_then_fail)
    for debug, shown in (([], 0), (["--debug"], 1)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                main(["weights", *debug])
            except CabenchError:
                pass
        assert len(seen) == shown
    assert capsys.readouterr().err.strip() == "cabench: error: the real problem"


def test_an_empty_mask_names_its_file_and_frame_and_keeps_the_rows_before(tmp_path, capsys, photos):
    import json

    from benchmark.results.store import Part

    frames = np.stack([photos["astronaut"][i : i + 32, 200:232] for i in range(4)])
    write_frames(tmp_path / "gt", frames)
    write_frames(tmp_path / "pred", frames[:, ::-1])
    masks = np.full((4, 32, 32, 3), 255, np.uint8)
    masks[2] = 0
    write_frames(tmp_path / "masks", masks)
    out = tmp_path / "out"
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'pred'}", "--mask", str(tmp_path / "masks"),
                 "--metrics", "l2", "--batch-size", "2", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"cabench: error: {tmp_path / 'masks' / '00002.png'} (frame 2): the mask is empty (no pixel above 0)"
    folder = out / "parts" / "gt" / "gt" / "a" / "canonical"
    fingerprint = json.loads((folder / "l2.log").read_text().splitlines()[0])["fingerprint"]
    assert list(Part(folder, "l2", fingerprint).rows()["frame"]) == [0, 1]  # the batch before is kept


def test_a_mask_the_protocol_emptied_names_the_frame():
    from benchmark.evaluation import _check_masks
    from benchmark.io import open_masks

    raw = np.ones((2, 8, 8), np.float32)
    prepared = torch.ones(2, 1, 4, 4)
    prepared[1] = 0
    with pytest.raises(CabenchError, match=r"mask \(frame 7\): the mask is empty after protocol 'imavatar' prepared it"):
        _check_masks(raw, prepared, [6, 7], open_masks(np.ones((2, 8, 8), np.float32)), "imavatar")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_a_run_on_cuda_without_cuda_stops_before_any_work(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('[run]\ndevice = "cuda"\nmetrics = ["l2"]\n[[datasets]]\npath = "absent"\n'
                      '[[methods]]\nname = "a"\nframes = "f"\n')
    assert main(["run", str(config), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "cabench: error: [run] device cuda: no CUDA device is available (use cpu)"
    assert not (tmp_path / "runs").exists()
