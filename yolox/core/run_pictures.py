"""The pictures a training leaves in its run folder: ``curves.png`` (losses, learning rate and AP against the
iteration, read back from ``metrics.jsonl``) and ``val_predictions.jpg`` (the model's boxes on a few fixed
validation images). Both are rewritten at every evaluation, ``curves.png`` also at the end.

``curves.png`` needs matplotlib (the ``plot`` extra); without it one line says so, once per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from torch import nn

from yolox.core.metrics_log import read_metrics
from yolox.utils.files import atomic_path, write_image_atomically
from yolox.utils.plotting import PLOT_EXTRA_NOTE, load_pyplot

CURVES_FILE = "curves.png"
VAL_PREDICTIONS_FILE = "val_predictions.jpg"
LOSS_NAMES = ("total_loss", "iou_loss", "conf_loss", "cls_loss", "l1_loss")
AP_NAMES = ("ap50_95", "ap50")
VAL_PICTURE_IMAGES = 6  # the first images of the validation set, the same ones at every evaluation
VAL_PICTURE_COLUMNS = 3
VAL_PICTURE_CONF = 0.3  # as the demo: the boxes a user would be shown


def curve_series(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """From metrics records, per figure the iterations and values to plot: ``{name: {"x": [...], "y": [...]}}``.

    Losses and ``lr`` come from the train records, ``ap50_95`` and ``ap50`` from the eval records. A record
    repeated after a resume (same kind and iteration) counts once, the later one; figures without a value
    (``null``) are left out.
    """
    latest: dict[tuple[str, int], Mapping[str, Any]] = {}
    for record in records:
        if record.get("kind") in ("train", "eval") and isinstance(record.get("iteration"), int):
            latest[(record["kind"], record["iteration"])] = record
    series: dict[str, dict[str, list[float]]] = {}
    for (kind, iteration), record in sorted(latest.items(), key=lambda item: item[0][1]):
        for name in (*LOSS_NAMES, "lr") if kind == "train" else AP_NAMES:
            value = record.get(name)
            if isinstance(value, (int, float)):
                points = series.setdefault(name, {"x": [], "y": []})
                points["x"].append(iteration)
                points["y"].append(float(value))
    return series


def _plot_curves(plt: Any, series: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    figure, (losses, rate, precision) = plt.subplots(1, 3, figsize=(15, 4))
    for axes, names, label in ((losses, LOSS_NAMES, "loss"), (rate, ("lr",), "learning rate"),
                               (precision, AP_NAMES, "AP (fraction)")):
        for name in names:
            if name in series:
                marker = "o" if name in AP_NAMES else None
                axes.plot(series[name]["x"], series[name]["y"], label=name, marker=marker)
        axes.set_xlabel("iteration")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if any(name in series for name in names):
            axes.legend(fontsize="small")
    precision.set_ylim(bottom=0)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


class RunPictures:
    """Writes a run's pictures on rank 0; a picture that cannot be made is a warning, never a stopped run."""

    def __init__(self, run_dir: Path, title: str) -> None:
        """Pictures of the run in ``run_dir``; ``title`` heads ``curves.png``."""
        self.run_dir = run_dir
        self.title = title
        self._noted_missing_matplotlib = False

    def write_curves(self) -> Path | None:
        """Draw ``curves.png`` from ``metrics.jsonl``; None (with a note, once) without matplotlib."""
        plt = load_pyplot()
        if plt is None:
            if not self._noted_missing_matplotlib:
                logger.info(f"{CURVES_FILE} is not drawn: {PLOT_EXTRA_NOTE}")
                self._noted_missing_matplotlib = True
            return None
        metrics_file = self.run_dir / "metrics.jsonl"
        series = curve_series(read_metrics(metrics_file)) if metrics_file.is_file() else {}
        path = self.run_dir / CURVES_FILE
        try:
            _plot_curves(plt, series, self.title, path)
        except OSError as err:
            logger.warning(f"could not write {path}: {err}")
            return None
        return path

    def write_val_predictions(self, model: nn.Module, exp: Any, evaluator: Any, device: Any) -> Path | None:
        """Draw the boxes of the eval-mode ``model`` on the first validation images into ``val_predictions.jpg``."""
        dataset = getattr(getattr(evaluator, "dataloader", None), "dataset", None)
        records = getattr(dataset, "records", None)
        if not records:
            return None  # an exp's own evaluator without image records: nothing fixed to draw on
        path = self.run_dir / VAL_PREDICTIONS_FILE
        try:
            grid = prediction_grid(model, exp, [record.path for record in records[:VAL_PICTURE_IMAGES]], device)[0]
            write_image_atomically(path, grid)
        except (OSError, ValueError) as err:
            logger.warning(f"could not write {path}: {err}")
            return None
        return path


def prediction_grid(model: nn.Module, exp: Any, image_paths: Sequence[Path], device: Any) -> tuple[Any, list[int]]:
    """The boxes of ``model`` (scoring at least 0.3) drawn on each image, tiled; and the box count per image."""
    import cv2

    from yolox.utils.predictor import Predictor
    from yolox.utils.visualize import tile_images

    predictor = Predictor(model, exp.num_classes, exp.test_size, conf=VAL_PICTURE_CONF, nms=exp.nmsthre,
                          class_names=exp.class_names, device=device)
    drawn, counts = [], []
    for image_path in image_paths:
        image = cv2.imread(str(image_path))
        if image is None:
            continue  # the start-up check reports unreadable images; the picture shows the readable ones
        detections, _ = predictor.predict(image)
        drawn.append(predictor.draw(image, detections))
        counts.append(len(detections))
    if not drawn:
        raise ValueError(f"none of {', '.join(str(path) for path in image_paths)} is a readable image")
    return tile_images(drawn, columns=min(VAL_PICTURE_COLUMNS, len(drawn))), counts
