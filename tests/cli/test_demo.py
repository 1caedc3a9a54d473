"""The demo command with a hand-set model: result files with boxes where the model says, names, bad input."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolox.utils.errors import UserError
from yolox.utils.predictor import resolve_class_names

REPO_ROOT = Path(__file__).resolve().parents[2]

# An exp whose model ignores the image and predicts fixed boxes in network-input pixels (64 x 64 input):
# a confident class-1 box centred at (32, 24), 20 x 16, and a class-0 box below the score threshold.
HAND_SET_EXP = '''
import torch
from torch import nn

from yolox.exp import Exp as BaseExp


class HandSetDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("predictions", torch.tensor([
            [32.0, 24.0, 20.0, 16.0, 0.9, 0.05, 0.95],
            [10.0, 50.0, 8.0, 8.0, 0.2, 0.5, 0.1],
        ]))

    def forward(self, images):
        return self.predictions.to(images.dtype).unsqueeze(0).expand(images.shape[0], -1, -1)


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 2
        self.test_size = (64, 64)

    def get_model(self):
        return HandSetDetector()
'''


def load_demo():
    """The demo command's module."""
    from yolox.cli import demo

    return demo


def gradient_image(height=96, width=128):
    """A smooth BGR image; PNG keeps it exact so untouched pixels compare equal."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 2 % 256, ys * 2 % 256, (xs + ys) % 256], axis=2).astype(np.uint8)


@pytest.fixture()
def setup(tmp_path):
    """The hand-set exp file, its checkpoint (meta with class names) and the output folder."""
    exp_file = tmp_path / "hand_set.py"
    exp_file.write_text(HAND_SET_EXP)
    from yolox.exp import get_exp

    exp = get_exp(str(exp_file))
    meta = exp.meta()
    meta["class_names"] = ["circle", "square"]
    ckpt = tmp_path / "hand_set.pth"
    torch.save({"model": exp.get_model().state_dict(), "meta": meta}, ckpt)
    return exp_file, ckpt, tmp_path / "outputs"


def run_demo(setup, *args):
    """Run the demo's main in-process with the hand-set exp and checkpoint."""
    exp_file, ckpt, output_dir = setup
    return load_demo().main([*args, "-f", str(exp_file), "-c", str(ckpt), "--device", "cpu",
                             "output_dir", str(output_dir)])


def result_dir(output_dir):
    """The single timestamped folder of saved results."""
    (run,) = (output_dir / "hand_set" / "vis_res").iterdir()
    return run


def test_image_folder_results_have_boxes_where_the_model_predicts(setup, tmp_path, capsys):
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    image = gradient_image()
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "nested" / "b.png"), image)
    (folder / "readme.txt").write_text("not an image, ignored in folders")

    assert run_demo(setup, "image", "--path", str(folder), "--save_result", "--fuse") == 0
    printed = capsys.readouterr().out
    # One summary line per image (names from the checkpoint meta); the low-score box is filtered out.
    assert printed.count("1 detection (1 square), inference") == 2 and "circle" not in printed
    assert "0.855" not in printed and len(printed.strip().splitlines()) == 3  # two images and "results saved in"

    run = result_dir(setup[2])
    for drawn_path in (run / "a.png", run / "nested" / "b.png"):
        drawn = cv2.imread(str(drawn_path))
        changed = (drawn != image).any(axis=2)
        # Input ratio 0.5 (96 x 128 into 64 x 64): the box is x 44..84, y 32..64 in the image.
        assert changed[48, 44] and changed[48, 84] and changed[32, 64] and changed[64, 64]
        assert not changed[36:60, 48:80].any(), "the inside of the box must stay untouched"
        assert not changed[70:, :].any() and not changed[:, :40].any() and not changed[34:, 90:].any()
        assert changed[20:32, 44:84].any(), "the label sits above the box"


def test_exp_class_names_and_verbose_box_lines(setup, tmp_path, capsys):
    """Official-style checkpoint without meta: names from the exp; --fp16 falls back to float32 on CPU."""
    exp_file, _, output_dir = setup
    from yolox.exp import get_exp

    exp = get_exp(str(exp_file))
    bare = tmp_path / "bare.pth"
    torch.save({"model": exp.get_model().state_dict()}, bare)  # official-style: no meta
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), gradient_image())
    code = load_demo().main(["image", "-f", str(exp_file), "-c", str(bare), "--path", str(path), "--verbose",
                             "--conf", "0.01", "--device", "cpu", "--fp16", "class_names", "ball,box"])
    assert code == 0
    printed = capsys.readouterr().out
    # --verbose lists every box under the summary line (score 0.9 x 0.95 and 0.2 x 0.5).
    assert "2 detections (1 box, 1 ball)" in printed and "  box 0.855 [" in printed and "  ball 0.100 [" in printed
    assert not output_dir.exists(), "nothing is saved without --save_result"


def test_nms_is_class_agnostic_by_default_like_the_official_demo(tmp_path, capsys):
    """Two overlapping boxes of different classes: one survives by default, both with --class-aware."""
    overlapping = HAND_SET_EXP.replace("[10.0, 50.0, 8.0, 8.0, 0.2, 0.5, 0.1]", "[33.0, 24.0, 20.0, 16.0, 0.8, 0.9, 0.05]")
    exp_file = tmp_path / "hand_set.py"
    exp_file.write_text(overlapping)
    from yolox.exp import get_exp

    ckpt = tmp_path / "overlapping.pth"  # the predictions are a buffer: the checkpoint must carry the new ones
    torch.save({"model": get_exp(str(exp_file)).get_model().state_dict()}, ckpt)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), gradient_image())
    base = ["image", "-f", str(exp_file), "-c", str(ckpt), "--path", str(path), "--device", "cpu"]
    assert load_demo().main([*base, "class_names", "circle,square"]) == 0
    assert ": 1 detection (1 square)" in capsys.readouterr().out  # the higher score (0.855 against 0.72) is kept
    assert load_demo().main([*base, "--class-aware", "class_names", "circle,square"]) == 0
    assert ": 2 detections (1 square, 1 circle)" in capsys.readouterr().out


def test_video_results_are_an_mp4_with_boxes(setup, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    frame = np.full((96, 128, 3), 128, np.uint8)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 96))
    for _ in range(3):
        writer.write(frame)
    writer.release()

    assert run_demo(setup, "video", "--path", str(video), "--save_result") == 0
    assert capsys.readouterr().out.count("frame ") == 3
    saved = cv2.VideoCapture(str(result_dir(setup[2]) / "clip.mp4"))
    frames = []
    while True:
        ok, image = saved.read()
        if not ok:
            break
        frames.append(image)
    saved.release()
    assert len(frames) == 3
    difference = np.abs(frames[0].astype(int) - frame.astype(int)).max(axis=2)
    assert difference[48, 44] > 40 and difference[48, 84] > 40  # the box's left and right sides
    assert difference[48, 64] < 15 and difference[85, 110] < 15  # inside the box and far away: unchanged


@pytest.mark.parametrize("case, expected", [
    ("missing_ckpt", "missing.pth does not exist"),
    ("missing_path", "does not exist"),
    ("not_an_image", "not an image"),
    ("bad_video", "cannot be opened"),
    ("class_mismatch", "num_classes"),
    ("no_path", "needs --path"),
    ("bad_tsize", "multiples of 32"),
    ("foreign_weights", "does not fit"),
])
def test_bad_input_exits_2_with_one_clear_line(setup, tmp_path, capsys, case, expected):
    exp_file, ckpt, _ = setup
    fake_image = tmp_path / "fake.jpg"
    fake_image.write_text("text, not pixels")
    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes(b"\x00garbage" * 64)
    mismatch = tmp_path / "three_classes.pth"
    saved = torch.load(ckpt, weights_only=True)
    saved["meta"]["num_classes"] = 3
    torch.save(saved, mismatch)
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {**saved["model"], "neck.extra.weight": torch.zeros(2)}}, foreign)
    image = tmp_path / "ok.png"
    cv2.imwrite(str(image), gradient_image())
    args = {
        "missing_ckpt": ["image", "--path", str(image), "-c", str(tmp_path / "missing.pth")],
        "missing_path": ["image", "--path", str(tmp_path / "nowhere.png"), "-c", str(ckpt)],
        "not_an_image": ["image", "--path", str(fake_image), "-c", str(ckpt)],
        "bad_video": ["video", "--path", str(broken_video), "-c", str(ckpt)],
        "class_mismatch": ["image", "--path", str(image), "-c", str(mismatch)],
        "no_path": ["image", "-c", str(ckpt)],
        "bad_tsize": ["image", "--path", str(image), "-c", str(ckpt), "--tsize", "64,100"],
        "foreign_weights": ["image", "--path", str(image), "-c", str(foreign)],
    }[case]
    assert load_demo().main([*args, "-f", str(exp_file), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert expected in error and len(error.strip().splitlines()) <= 2


@pytest.mark.slow  # a fresh interpreter (about 3 s); main() gives the same exit code in-process above, and
# test-fast keeps one forwarder run in tests/cli/test_check_data.py
def test_demo_script_exits_2_without_traceback(setup, tmp_path):
    exp_file, ckpt, _ = setup
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "demo.py"), "image", "-f", str(exp_file),
                             "-c", str(ckpt), "--path", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "nowhere does not exist" in result.stderr


def test_class_names_come_from_meta_then_exp_then_coco():
    coco = tuple(f"c{i}" for i in range(80))
    assert resolve_class_names({"class_names": ["a", "b"]}, ("x", "y"), 2, coco) == ("a", "b")
    assert resolve_class_names({}, ("x", "y"), 2, coco) == ("x", "y")
    assert resolve_class_names({}, None, 80, coco) == coco
    assert resolve_class_names({}, None, 5, coco) is None
    with pytest.raises(UserError, match="3 class names"):
        resolve_class_names({"class_names": ["a", "b", "c"]}, None, 2, coco)


def test_fused_model_predicts_like_the_plain_one(tmp_path):
    from yolox.exp import get_exp
    from yolox.utils.predictor import load_inference_model

    opts = ["depth", "0.33", "width", "0.125", "num_classes", "3", "test_size", "64,64", "attention", "eca"]

    def tiny_exp():
        exp = get_exp(None, "yolox-s")
        exp.merge(opts)
        return exp

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pth"
    trained = tiny_exp()
    torch.save({"model": trained.get_model().state_dict(), "meta": trained.meta()}, ckpt)
    plain, _ = load_inference_model(tiny_exp(), ckpt, torch.device("cpu"))
    fused, _ = load_inference_model(tiny_exp(), ckpt, torch.device("cpu"), fuse=True)
    def count_norms(model):
        return sum(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())

    assert count_norms(fused) < count_norms(plain)
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected, actual = plain(images), fused(images)
    scale = expected.abs().amax(dim=(0, 1))
    assert ((actual - expected).abs().amax(dim=(0, 1)) <= 1e-4 * scale + 1e-6).all()
