"""torch.hub entry points: ``torch.hub.load("<path of this checkout>", "yolox_s", source="local", pretrained=False)``.

Pretrained weights are read from ``ckpt_path`` or the torch hub cache, never downloaded (see yolox.models.build).
"""

from yolox.models.build import (
    create_yolox_model,
    yolov3,
    yolox_custom,
    yolox_l,
    yolox_m,
    yolox_nano,
    yolox_s,
    yolox_tiny,
    yolox_x,
)

dependencies = ["torch", "torchvision", "loguru", "numpy", "cv2"]

__all__ = ["create_yolox_model", "yolov3", "yolox_custom", "yolox_l", "yolox_m", "yolox_nano", "yolox_s", "yolox_tiny",
           "yolox_x"]
