"""tools/visualize_attention.py on a generated image: one picture per block and a strip per image."""

from pathlib import Path

import cv2
import pytest
import torch

from yolox.cli.visualize_attention import main as visualize_main

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


def _checkpoint(tmp_path: Path, attention: str) -> Path:
    from yolox.exp import get_exp

    exp = get_exp(SHAPES_EXP)
    exp.merge(["attention", attention])
    torch.manual_seed(0)
    path = tmp_path / f"{attention}.pth"
    torch.save({"model": exp.get_model().state_dict(), "meta": exp.meta()}, path)
    return path


@pytest.mark.parametrize("attention,channel_block", [("cam", False), ("se", True)])
def test_pictures_per_block_and_strip(tmp_path, attention, channel_block):
    from yolox.data.shapes import generate_shapes_dataset

    data_dir = generate_shapes_dataset(tmp_path / "shapes", num_train=1, num_val=1, img_size=96, seed=0)
    image_dir = Path(data_dir) / "val"
    out = tmp_path / "maps"
    argv = ["-f", SHAPES_EXP, "-c", str(_checkpoint(tmp_path, attention)), "--path", str(image_dir),
            "--save_dir", str(out), "--device", "cpu", "--tsize", "96", "attention", attention]
    assert visualize_main(argv) == 0
    image_name = next(image_dir.iterdir()).stem
    pictures = {path.name for path in out.iterdir()}
    assert pictures == {f"{image_name}_attn_{level}.png" for level in ("dark3", "dark4", "dark5")} | {f"{image_name}_attention.png"}
    level_picture = cv2.imread(str(out / f"{image_name}_attn_dark3.png"))
    if channel_block:
        assert level_picture.shape[0] == 160  # a bar chart
    else:
        assert level_picture.shape[:2] == (96, 96)  # overlaid on the image


def test_model_without_attention_is_a_user_error(tmp_path, capsys):
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), (torch.rand(64, 64, 3) * 255).byte().numpy())
    argv = ["-f", SHAPES_EXP, "-c", str(_checkpoint(tmp_path, "None")), "--path", str(image), "--device", "cpu",
            "attention", "None"]
    assert visualize_main(argv) == 2
    assert "no attention block" in capsys.readouterr().err


def test_an_unreadable_image_in_a_folder_is_skipped_with_a_warning(tmp_path, capsys):
    from loguru import logger

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_good.png"), (torch.rand(64, 64, 3) * 255).byte().numpy())
    (folder / "b_broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "c_good.png"), (torch.rand(64, 64, 3) * 255).byte().numpy())
    out = tmp_path / "maps"
    argv = ["-f", SHAPES_EXP, "-c", str(_checkpoint(tmp_path, "cam")), "--path", str(folder), "--save_dir", str(out),
            "--device", "cpu", "--tsize", "64", "attention", "cam"]
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING")
    try:
        assert visualize_main(argv) == 0
    finally:
        logger.remove(sink)
    assert {path.name for path in out.glob("*_attention.png")} == {"a_good_attention.png", "c_good_attention.png"}
    assert len(warnings) == 1 and "skipping" in warnings[0] and "b_broken.jpg" in warnings[0]
    (folder / "a_good.png").unlink()
    (folder / "c_good.png").unlink()
    assert visualize_main(argv) == 2
    assert "none of the 1 images" in capsys.readouterr().err
