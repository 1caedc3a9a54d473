"""Inference without PyTorch: letterbox, decoding, NMS in numpy, and an onnxruntime runner.

The preprocessing here is the evaluation letterbox of the project (BGR, 0..255, resized keeping the
aspect ratio, padded with 114 to the bottom/right so the image sits at the top-left, not normalised).
The PyTorch ``Predictor`` uses the same functions, so both paths see identical inputs.

Command line (writes the drawn images to ``--output_dir``)::

    python -m yolox.utils.onnx_inference model.onnx path/to/image_or_folder --output_dir out
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolox.utils.errors import UserError, run_command
from yolox.utils.visualize import class_name, draw_detections

PAD_VALUE = 114
INPUT_CONVENTION = (
    "BGR channel order, float32 values 0..255, not normalised; the image is resized keeping its aspect "
    f"ratio and padded with {PAD_VALUE} to the bottom/right (image at the top-left)"
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_STRIDES = (8, 16, 32)

# Metadata keys written into exported models (ONNX metadata_props, TorchScript extra file).
META_INPUT_CONVENTION = "input_convention"
META_INPUT_SIZE = "input_size"
META_CLASS_NAMES = "class_names"
META_NUM_CLASSES = "num_classes"
META_DECODED = "decode_in_inference"
META_STRIDES = "strides"
META_ATTENTION = "attention"
META_EXP_NAME = "exp_name"
META_DYNAMIC_BATCH = "dynamic_batch"
META_DYNAMIC_HW = "dynamic_hw"


@dataclass
class Detections:
    """Detections of one image in its original pixel coordinates."""

    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2
    scores: np.ndarray  # [N] objectness x best class score
    class_ids: np.ndarray  # [N] int64

    def __len__(self) -> int:
        """Number of detections."""
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> "Detections":
        """Return a result without detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))

    def describe(self, class_names: Sequence[str] | None = None) -> list[str]:
        """Return one human-readable line per detection: name, score and box."""
        lines = []
        for box, score, class_id in zip(self.boxes, self.scores, self.class_ids):
            x1, y1, x2, y2 = (float(v) for v in box)
            name = class_name(int(class_id), class_names)
            lines.append(f"{name} {float(score):.3f} [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
        return lines


def report_detections(name: str, detections: Detections, elapsed_ms: float,
                      class_names: Sequence[str] | None = None, verbose: bool = False) -> None:
    """Print one summary line for an image (count per class, inference time); ``verbose`` adds a line per box."""
    counts: dict[str, int] = {}
    for class_id in detections.class_ids:
        label = class_name(int(class_id), class_names)
        counts[label] = counts.get(label, 0) + 1
    per_class = ", ".join(f"{count} {label}" for label, count in sorted(counts.items(), key=lambda item: -item[1]))
    noun = "detection" if len(detections) == 1 else "detections"
    print(f"{name}: {len(detections)} {noun}{f' ({per_class})' if per_class else ''}, inference {elapsed_ms:.1f} ms")
    if verbose:
        for line in detections.describe(class_names):
            print(f"  {line}")


def letterbox(image: np.ndarray, input_hw: Sequence[int]) -> tuple[np.ndarray, float]:
    """Return the CHW float32 network input for a BGR HWC uint8 ``image`` and the resize ratio used."""
    target_h, target_w = int(input_hw[0]), int(input_hw[1])
    src_h, src_w = image.shape[:2]
    ratio = min(target_h / src_h, target_w / src_w)
    new_h, new_w = int(src_h * ratio), int(src_w * ratio)
    canvas = np.full((target_h, target_w, 3), PAD_VALUE, dtype=np.uint8)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[:new_h, :new_w] = resized.reshape(new_h, new_w, -1)[:, :, :3]
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), ratio


def anchor_grid(input_hw: Sequence[int], strides: Sequence[int] = DEFAULT_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Return the (x, y) cell of every anchor [A, 2] and its stride [A, 1], levels in order, rows major."""
    cells, anchor_strides = [], []
    for stride in strides:
        rows, cols = int(input_hw[0]) // stride, int(input_hw[1]) // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cells.append(np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1))
        anchor_strides.append(np.full((rows * cols, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(anchor_strides).astype(np.float32)


def decode_outputs(raw: np.ndarray, input_hw: Sequence[int], strides: Sequence[int] = DEFAULT_STRIDES) -> np.ndarray:
    """Turn raw head outputs [B, A, 5 + C] (offsets, log sizes) into boxes cx, cy, w, h in input pixels."""
    cells, anchor_strides = anchor_grid(input_hw, strides)
    if raw.shape[1] != cells.shape[0]:
        raise UserError(
            f"the model gave {raw.shape[1]} anchors but an input of {tuple(input_hw)} with strides "
            f"{tuple(strides)} has {cells.shape[0]}: check the input size and the model's '{META_STRIDES}' metadata"
        )
    decoded = raw.astype(np.float32).copy()
    decoded[..., 0:2] = (raw[..., 0:2] + cells) * anchor_strides
    decoded[..., 2:4] = np.exp(raw[..., 2:4]) * anchor_strides
    return decoded


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of kept boxes (x1, y1, x2, y2), highest score first; drops IoU > threshold."""
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    prediction: np.ndarray,
    num_classes: int,
    conf_thre: float = 0.7,
    nms_thre: float = 0.45,
    class_agnostic: bool = False,
) -> list[np.ndarray | None]:
    """Score filter and NMS on decoded [B, A, 5 + C]; per image rows x1, y1, x2, y2, obj, cls_score, cls_idx."""
    results: list[np.ndarray | None] = []
    for image_pred in prediction:
        cx, cy, w, h = (image_pred[:, i] for i in range(4))
        corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        class_scores = image_pred[:, 5 : 5 + num_classes]
        class_idx = np.argmax(class_scores, axis=1)
        class_conf = class_scores[np.arange(class_scores.shape[0]), class_idx]
        objectness = image_pred[:, 4]
        mask = objectness * class_conf >= conf_thre
        if not mask.any():
            results.append(None)
            continue
        rows = np.concatenate(
            [corners[mask], objectness[mask, None], class_conf[mask, None], class_idx[mask, None].astype(np.float32)],
            axis=1,
        ).astype(np.float32)
        scores = rows[:, 4] * rows[:, 5]
        if class_agnostic:
            keep = nms(rows[:, :4], scores, nms_thre)
        else:
            kept_per_class = []
            for cls in np.unique(rows[:, 6]):
                members = np.flatnonzero(rows[:, 6] == cls)
                kept_per_class.append(members[nms(rows[members, :4], scores[members], nms_thre)])
            keep = np.concatenate(kept_per_class)
            keep = keep[np.argsort(-scores[keep], kind="stable")]
        results.append(rows[keep])
    return results


def to_detections(rows: np.ndarray | None, ratio: float, image_hw: Sequence[int]) -> Detections:
    """Map post-processed rows from network input pixels back to the original image, clipped to it."""
    if rows is None or len(rows) == 0:
        return Detections.empty()
    boxes = rows[:, :4] / ratio
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, image_hw[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, image_hw[0])
    scores = (rows[:, 4] * rows[:, 5]).astype(np.float32)
    return Detections(boxes.astype(np.float32), scores, rows[:, 6].astype(np.int64))


def read_image(path: Path) -> np.ndarray:
    """Read a BGR image, raising UserError when the file is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist: check --path")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path} is not an image OpenCV can read (supported: {', '.join(IMAGE_EXTENSIONS)})")
    return image


def find_images(path: Path) -> list[Path]:
    """Return ``path`` itself, or the images under the folder ``path`` (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under the folder {path}")
        return images
    raise UserError(f"{path} does not exist: give an image file or a folder of images")


def output_path_for(image_path: Path, input_root: Path, output_dir: Path) -> Path:
    """Where the drawn copy of ``image_path`` goes: same relative path under ``output_dir`` for folders."""
    relative = Path(image_path).relative_to(input_root) if Path(input_root).is_dir() else Path(Path(image_path).name)
    return Path(output_dir) / relative


def parse_metadata(props: dict[str, str]) -> dict:
    """Decode the metadata strings written at export into Python values (missing keys are absent)."""
    parsed: dict = {}
    for key, value in props.items():
        if key in (META_INPUT_SIZE, META_STRIDES, META_CLASS_NAMES, META_ATTENTION, META_NUM_CLASSES,
                   META_DECODED, META_DYNAMIC_BATCH, META_DYNAMIC_HW):
            parsed[key] = json.loads(value)
        else:
            parsed[key] = value
    return parsed


class OnnxDetector:
    """Runs an exported YOLOX ONNX model with onnxruntime: letterbox, run, decode if needed, NMS."""

    def __init__(
        self,
        model_path: Path,
        input_hw: Sequence[int] | None = None,
        providers: list[str] | None = None,
    ):
        """Open ``model_path``; ``input_hw`` overrides the export size (only for dynamic H/W exports)."""
        try:
            import onnxruntime
        except ImportError as err:
            raise UserError("onnxruntime is not installed: pip install onnxruntime") from err
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UserError(f"ONNX model {model_path} does not exist: export one with tools/export_onnx.py")
        self.session = onnxruntime.InferenceSession(str(model_path), providers=providers or ["CPUExecutionProvider"])
        self.metadata = parse_metadata(dict(self.session.get_modelmeta().custom_metadata_map))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed_hw = [d if isinstance(d, int) else None for d in model_input.shape[2:4]]
        export_hw = self.metadata.get(META_INPUT_SIZE) or fixed_hw
        if input_hw is not None and all(fixed_hw) and tuple(input_hw) != tuple(fixed_hw):
            raise UserError(f"{model_path} was exported for a fixed input {tuple(fixed_hw)}: re-export with "
                            f"--dynamic-hw to use {tuple(input_hw)}")
        chosen = input_hw if input_hw is not None else export_hw
        if chosen is None or not all(chosen):
            raise UserError(f"{model_path} has no input size in its metadata: pass the input size (--tsize)")
        self.input_hw = (int(chosen[0]), int(chosen[1]))
        # Without our metadata, follow the official YOLOX export, which leaves decoding to the caller.
        self.decoded = bool(self.metadata.get(META_DECODED, False))
        self.strides = tuple(self.metadata.get(META_STRIDES, DEFAULT_STRIDES))
        self.class_names = self.metadata.get(META_CLASS_NAMES)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a float32 [B, 3, H, W] batch; returns decoded [B, A, 5 + C]."""
        raw = self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]
        return raw if self.decoded else decode_outputs(raw, batch.shape[2:4], self.strides)

    def detect(
        self, image: np.ndarray, conf: float = 0.3, nms_thre: float = 0.3, class_agnostic: bool = False
    ) -> Detections:
        """Detect objects in one BGR image; boxes come back in its own pixel coordinates."""
        tensor, ratio = letterbox(image, self.input_hw)
        prediction = self.run(tensor[None])
        num_classes = prediction.shape[-1] - 5
        rows = postprocess(prediction, num_classes, conf, nms_thre, class_agnostic)[0]
        return to_detections(rows, ratio, image.shape[:2])


def parse_size(text: str) -> tuple[int, int]:
    """Parse a command-line input size: ``640`` (square) or ``480,640`` (H,W)."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        sides = [int(part) for part in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use 640 (square) or 480,640 (height,width)")
    return sides[0], sides[-1]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run an exported YOLOX ONNX model on images with onnxruntime.")
    parser.add_argument("model", type=Path, help="the .onnx file written by tools/export_onnx.py")
    parser.add_argument("path", type=Path, help="an image, or a folder searched recursively for images")
    parser.add_argument("-o", "--output-dir", "--output_dir", dest="output_dir", type=Path, default=Path("onnx_vis"),
                        help="where drawn images go")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold (objectness x class score)")
    parser.add_argument("--nms", type=float, default=0.3, help="NMS IoU threshold")
    parser.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    parser.add_argument("--verbose", action="store_true", help="print every box, not only one line per image")
    parser.add_argument("--tsize", type=parse_size, default=None,
                        help="input size 640 or H,W such as 480,640 (dynamic H/W exports only)")
    return parser.parse_args(argv)


def detect_and_draw(args: argparse.Namespace) -> None:
    """Detect on every image of ``args.path``, print the detections and write drawn copies to the output folder."""
    detector = OnnxDetector(args.model, input_hw=args.tsize)
    images = find_images(args.path)
    for image_path in images:
        image = read_image(image_path)
        start = time.perf_counter()
        detections = detector.detect(image, args.conf, args.nms, args.agnostic)
        elapsed_ms = (time.perf_counter() - start) * 1000
        report_detections(str(image_path), detections, elapsed_ms, detector.class_names, args.verbose)
        drawn = draw_detections(image, detections.boxes, detections.scores, detections.class_ids,
                                detector.class_names)
        target = output_path_for(image_path, args.path, args.output_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), drawn)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: detect on every image, print the detections, write drawn copies."""
    args = _parse_args(argv)
    return run_command(lambda: detect_and_draw(args))


if __name__ == "__main__":
    sys.exit(main())
