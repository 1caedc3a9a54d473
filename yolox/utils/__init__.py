"""Leaf helpers shared by the models, data, training and evaluation packages.

The official YOLOX names (``from yolox.utils import postprocess, vis``) resolve on first use through a
module-level ``__getattr__``: importing this package stays cheap and pulls in none of the packages above it.
"""

from importlib import import_module
from typing import Any

# Public name -> the module that defines it.
_LAZY_NAMES = {
    "AverageMeter": "yolox.utils.compat",
    "LRScheduler": "yolox.utils.lr_scheduler",
    "MeterBuffer": "yolox.utils.compat",
    "MlflowLogger": "yolox.utils.loggers",
    "ModelEMA": "yolox.utils.ema",
    "WandbLogger": "yolox.utils.loggers",
    "adjust_box_anns": "yolox.utils.compat",
    "adjust_status": "yolox.utils.model_utils",
    "all_gather": "yolox.utils.compat",
    "all_reduce": "yolox.utils.compat",
    "all_reduce_norm": "yolox.utils.allreduce_norm",
    "bboxes_iou": "yolox.utils.boxes",
    "configure_module": "yolox.utils.compat",
    "configure_nccl": "yolox.utils.compat",
    "configure_omp": "yolox.utils.compat",
    "cxcywh2xyxy": "yolox.utils.boxes",
    "demo_postprocess": "yolox.utils.compat",
    "filter_box": "yolox.utils.compat",
    "freeze_module": "yolox.utils.model_utils",
    "fuse_conv_and_bn": "yolox.utils.model_utils",
    "fuse_model": "yolox.utils.model_utils",
    "gather": "yolox.utils.compat",
    "get_async_norm_states": "yolox.utils.compat",
    "get_local_rank": "yolox.utils.dist",
    "get_local_size": "yolox.utils.compat",
    "get_model_info": "yolox.utils.model_utils",
    "get_num_devices": "yolox.utils.compat",
    "get_rank": "yolox.utils.dist",
    "get_total_and_free_memory_in_Mb": "yolox.utils.compat",
    "get_world_size": "yolox.utils.dist",
    "gpu_mem_usage": "yolox.utils.compat",
    "is_main_process": "yolox.utils.dist",
    "is_parallel": "yolox.utils.compat",
    "load_ckpt": "yolox.utils.checkpoint",
    "matrix_iou": "yolox.utils.compat",
    "mem_usage": "yolox.utils.compat",
    "meshgrid": "yolox.utils.boxes",
    "mkdir": "yolox.utils.compat",
    "multiclass_nms": "yolox.utils.compat",
    "nms": "yolox.utils.compat",
    "occupy_mem": "yolox.utils.compat",
    "postprocess": "yolox.utils.boxes",
    "pyobj2tensor": "yolox.utils.compat",
    "random_color": "yolox.utils.compat",
    "replace_module": "yolox.utils.model_utils",
    "save_checkpoint": "yolox.utils.checkpoint",
    "setup_logger": "yolox.utils.logger",
    "synchronize": "yolox.utils.compat",
    "tensor2pyobj": "yolox.utils.compat",
    "time_synchronized": "yolox.utils.compat",
    "vis": "yolox.utils.compat",
    "visualize_assign": "yolox.utils.compat",
    "wait_for_the_master": "yolox.utils.compat",
    "xyxy2cxcywh": "yolox.utils.boxes",
    "xyxy2xywh": "yolox.utils.boxes",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name: str) -> Any:
    """Import the module defining the public ``name`` on first use and return the object."""
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'yolox.utils' has no attribute {name!r}")
    value = getattr(import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY_NAMES))
