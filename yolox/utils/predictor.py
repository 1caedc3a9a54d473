"""PyTorch inference for the demo: load a checkpoint for an exp, letterbox, forward, NMS, scale back, draw."""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
from loguru import logger

from yolox.utils.boxes import postprocess
from yolox.utils.checkpoint import load_exact_weights
from yolox.utils.errors import UserError
from yolox.utils.onnx_inference import (
    Detections,
    letterbox,
    output_path_for,
    read_image,
    report_detections,
    to_detections,
)
from yolox.utils.protocols import ExpLike
from yolox.utils.visualize import draw_detections


def resolve_class_names(
    meta: dict[str, Any],
    exp_class_names: Sequence[str] | None,
    num_classes: int,
    coco_names: Sequence[str],
) -> tuple[str, ...] | None:
    """Class names from the checkpoint meta, else the exp, else the COCO names for 80-class models."""
    for names in (meta.get("class_names"), exp_class_names):
        if names:
            if len(names) != num_classes:
                raise UserError(f"{len(names)} class names were given for a {num_classes}-class model: "
                                "fix class_names in the exp")
            return tuple(str(name) for name in names)
    if num_classes == len(coco_names):
        return tuple(coco_names)
    return None


def input_size(tsize: Sequence[int] | None, default: Sequence[int]) -> tuple[int, int]:
    """The network input (H, W): ``tsize`` (from --tsize) when given, else ``default``; multiples of 32."""
    if tsize is None:
        return int(default[0]), int(default[1])
    height, width = int(tsize[0]), int(tsize[-1])
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise UserError(f"--tsize {height},{width}: both sides must be positive multiples of 32 (the largest "
                        f"stride), e.g. {max(32, round(height / 32) * 32)},{max(32, round(width / 32) * 32)}")
    return height, width


def load_inference_model(
    exp: ExpLike,
    ckpt_path: str | Path,
    device: torch.device,
    fuse: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the exp's model, load the checkpoint strictly (see ``load_exact_weights``), eval mode on ``device``."""
    model = exp.get_model()
    meta = load_exact_weights(model, ckpt_path, exp)
    model.eval()
    if fuse:
        from yolox.utils.model_utils import fuse_model

        model = fuse_model(model)
    return model.to(device), meta


class Predictor:
    """Runs a YOLOX model on BGR images: letterbox as in evaluation, forward, NMS, boxes in image pixels."""

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        input_hw: Sequence[int],
        conf: float = 0.3,
        nms: float = 0.3,
        class_names: Sequence[str] | None = None,
        device: torch.device = torch.device("cpu"),
        fp16: bool = False,
        class_agnostic: bool = False,
    ):
        """Wrap an eval-mode ``model``; ``fp16`` runs it in half precision (CUDA only)."""
        if fp16 and device.type != "cuda":
            logger.warning("--fp16 needs a CUDA device; running in float32 on {}", device)
            fp16 = False
        self.model = model.half() if fp16 else model
        self.num_classes = num_classes
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.conf = conf
        self.nms = nms
        self.class_names = tuple(class_names) if class_names is not None else None
        self.device = device
        self.fp16 = fp16
        self.class_agnostic = class_agnostic

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, float]:
        """Return the [1, 3, H, W] input tensor on the device and the resize ratio."""
        array, ratio = letterbox(image, self.input_hw)
        tensor = torch.from_numpy(array).unsqueeze(0).to(self.device)
        return (tensor.half() if self.fp16 else tensor), ratio

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> tuple[Detections, float]:
        """Detect objects in one BGR image; returns the detections and the inference seconds."""
        tensor, ratio = self.preprocess(image)
        start = time.perf_counter()
        outputs = self.model(tensor).float()
        rows = postprocess(outputs, self.num_classes, self.conf, self.nms, class_agnostic=self.class_agnostic)[0]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        rows_np = None if rows is None else rows.cpu().numpy()
        return to_detections(rows_np, ratio, image.shape[:2]), elapsed

    def draw(self, image: np.ndarray, detections: Detections) -> np.ndarray:
        """Return a copy of ``image`` with the detections drawn."""
        return draw_detections(image, detections.boxes, detections.scores, detections.class_ids, self.class_names)

    def report(self, name: str, detections: Detections, elapsed: float, verbose: bool = False) -> None:
        """Print one summary line for the image (``verbose``: and every box) with its inference time."""
        report_detections(name, detections, elapsed * 1000, self.class_names, verbose)


def predict_images(
    predictor: Predictor,
    images: Sequence[Path],
    input_root: Path,
    save_dir: Path | None = None,
    verbose: bool = False,
) -> list[tuple[Path, Detections]]:
    """Detect on each image, print a line per image (``verbose``: per box), write drawn copies under ``save_dir``."""
    results = []
    for image_path in images:
        image = read_image(image_path)
        detections, elapsed = predictor.predict(image)
        predictor.report(str(image_path), detections, elapsed, verbose)
        if save_dir is not None:
            target = output_path_for(image_path, input_root, save_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), predictor.draw(image, detections)):
                raise UserError(f"could not write {target}: check the output folder is writable")
        results.append((image_path, detections))
    return results


def open_video(source: str | Path | int) -> cv2.VideoCapture:
    """Open a video file or a camera index, raising UserError when it cannot be read."""
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise UserError(f"video {source} does not exist: check --path")
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    ok = capture.isOpened()
    if ok:
        # Some containers open but hold no decodable frame: read one, then rewind (a no-op for cameras).
        ok, _ = capture.read()
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    if not ok:
        capture.release()
        what = f"camera {source}" if isinstance(source, int) else f"video {source}"
        raise UserError(f"{what} cannot be opened or read: check the file/codec or the --camid")
    return capture


def predict_video(
    predictor: Predictor,
    source: str | Path | int,
    save_path: Path | None = None,
    show: bool = False,
    verbose: bool = False,
) -> int:
    """Detect on every frame of a video or camera; optionally write an mp4 and show a window. Returns frames."""
    capture = open_video(source)
    writer = None
    frames = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            detections, elapsed = predictor.predict(frame)
            predictor.report(f"frame {frames}", detections, elapsed, verbose)
            drawn = predictor.draw(frame, detections)
            if save_path is not None:
                if writer is None:
                    save_path.parent.mkdir(parents=True, exist_ok=True)
                    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(save_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                writer.write(drawn)
            frames += 1
            if show:
                cv2.imshow("yolox", drawn)
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    return frames
