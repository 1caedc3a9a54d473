"""``python tools/visualize_attention.py``: draw what each attention block of a trained model attends to.

For every image and block: the spatial attention overlaid on the image (CAM: its row and column gates
multiplied and averaged over channels; CBAM: its spatial gate; SimAM, EMA: their maps), or, for channel
blocks (SE, ECA, SOCA), a bar chart of the channel gates; plus one strip per image with all of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from yolox.cli.common import (
    UserError,
    add_exp_arguments,
    add_tsize_argument,
    check_output_folder,
    command_parser,
    run_command,
)
from yolox.utils.run_files import BEST_CKPT

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BAR_CHART_SIZE = (160, 256)  # (height, minimum width)


def make_parser() -> argparse.ArgumentParser:
    """Flags: the exp and checkpoint, the images, the output folder."""
    parser = command_parser("yolox visualize-attention", "Save each attention block's map (or channel gates) per image.")
    parser.add_argument("--path", required=True, help="an image or a folder of images")
    parser.add_argument("--save-dir", "--save_dir", dest="save_dir", default=None,
                        help="output folder (default: <output_dir>/<exp_name>/attention_maps)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--strip-height", "--strip_height", dest="strip_height", type=int, default=192,
                        help="panel height in the per-image strip (pixels)")
    add_tsize_argument(parser)
    add_exp_arguments(parser, ckpt_help=f"checkpoint (default: <output_dir>/<exp_name>/{BEST_CKPT})")
    return parser


def list_images(path: Path) -> list[Path]:
    """The image files at ``path`` (one file, or a folder's images sorted by name)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(item for item in path.iterdir() if item.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            return images
        raise UserError(f"--path {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    raise UserError(f"--path {path} does not exist: give an image or a folder of images")


def overlay(image: np.ndarray, attention_map: np.ndarray, ratio: float, input_hw: tuple[int, int]) -> np.ndarray:
    """``attention_map`` (h x w, any scale) stretched to 0..1, taken back to the image and blended over it."""
    import cv2
    import numpy as np

    values = attention_map.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    values = (values - low) / (high - low) if high > low else np.zeros_like(values)
    # The map covers the letterboxed input; the image occupies its top-left corner at scale ``ratio``.
    resized = cv2.resize(values, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_LINEAR)
    height, width = image.shape[:2]
    cropped = resized[: max(1, round(height * ratio)), : max(1, round(width * ratio))]
    heat = cv2.applyColorMap((cv2.resize(cropped, (width, height)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 0.5, heat, 0.5, 0)


def bar_chart(gates: np.ndarray) -> np.ndarray:
    """Channel gates (0..1) as a white picture of bars, one column per channel, a grey line at 0.5."""
    import cv2
    import numpy as np

    height, min_width = BAR_CHART_SIZE
    bar_width = max(1, min_width // len(gates))
    chart = np.full((height, bar_width * len(gates), 3), 255, dtype=np.uint8)
    for index, gate in enumerate(np.clip(np.nan_to_num(gates, nan=0.0), 0.0, 1.0)):  # NaN: channel was all zero
        top = height - 1 - int(gate * (height - 1))
        cv2.rectangle(chart, (index * bar_width, top), ((index + 1) * bar_width - 1, height - 1), (180, 110, 30), -1)
    middle = height // 2
    cv2.line(chart, (0, middle), (chart.shape[1] - 1, middle), (128, 128, 128), 1)
    return chart


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    import cv2

    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
    cv2.rectangle(panel, (0, 0), (width + 4, height + baseline + 4), (0, 0, 0), -1)
    cv2.putText(panel, text, (2, height + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def visualize(args: argparse.Namespace) -> list[Path]:
    """Run the model on each image with the attention blocks hooked; return the files written."""
    import cv2
    import numpy as np
    import torch
    from loguru import logger

    from yolox.cli.common import exp_from_args, load_exp_model, tsize_from_args
    from yolox.data.data_augment import preproc
    from yolox.models.attention_probe import AttentionProbe
    from yolox.utils.device import resolve_device
    from yolox.utils.files import write_image_atomically

    if args.strip_height < 16:
        raise UserError(f"--strip-height {args.strip_height} is too small: use at least 16 pixels")
    exp = exp_from_args(args)
    save_dir = Path(args.save_dir) if args.save_dir else exp.run_dir / "attention_maps"
    check_output_folder(save_dir, "--save-dir")
    input_hw = tsize_from_args(args, tuple(exp.test_size))
    images = list_images(Path(args.path))
    device = resolve_device(args.device)
    model, _ = load_exp_model(exp, args.ckpt, device)
    probe = AttentionProbe(model, training_only=False)
    if not probe.blocks:
        raise UserError(f"the model of exp {exp.exp_name} has no attention block (attention={exp.attention!r}): "
                        "give an exp or override with attention set, e.g. attention cam")
    save_dir.mkdir(parents=True, exist_ok=True)
    written = []
    skipped = []
    for image_path in images:
        image = cv2.imread(str(image_path))
        if image is None:
            # One bad file in a folder must not cost the pictures of the good ones.
            logger.warning(f"skipping {image_path}: not a readable image")
            skipped.append(image_path)
            continue
        tensor, ratio = preproc(image, input_hw)
        with torch.inference_mode():
            model(torch.from_numpy(tensor).unsqueeze(0).to(device))
        panels = [_label(cv2.resize(image, (round(image.shape[1] * args.strip_height / image.shape[0]), args.strip_height)),
                         image_path.name)]
        for name, maps in probe.maps().items():
            if maps.is_channel_block:
                gates = maps.channel[0].float().cpu().numpy()
                picture = bar_chart(gates)
                caption = f"{name.rsplit('.', 1)[-1]} channels {np.nanmin(gates):.2f}-{np.nanmax(gates):.2f}"
            else:
                spatial = maps.spatial[0].float().cpu().numpy()
                picture = overlay(image, spatial, ratio, input_hw)
                caption = f"{name.rsplit('.', 1)[-1]} {spatial.shape[0]}x{spatial.shape[1]} {spatial.min():.2f}-{spatial.max():.2f}"
            path = save_dir / f"{image_path.stem}_{name.replace('.', '_')}.png"
            write_image_atomically(path, picture)
            written.append(path)
            scaled = cv2.resize(picture, (round(picture.shape[1] * args.strip_height / picture.shape[0]), args.strip_height))
            panels.append(_label(scaled, caption))
        probe.clear()
        strip_path = save_dir / f"{image_path.stem}_attention.png"
        write_image_atomically(strip_path, np.concatenate(panels, axis=1))
        written.append(strip_path)
    probe.close()
    if not written:
        raise UserError(f"none of the {len(skipped)} images in --path {args.path} is readable: "
                        f"{', '.join(str(path) for path in skipped[:3])}")
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the attention pictures; a user error exits with code 2 after one line."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: report(visualize(args)))


def report(written: list[Path]) -> None:
    """Say how many pictures were written, and where."""
    print(f"wrote {len(written)} pictures to {written[-1].parent}")


if __name__ == "__main__":
    sys.exit(main())
