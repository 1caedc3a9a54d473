"""Training: the Trainer loop and the multi-process launcher."""

from yolox.core.launch import WorkerError, launch
from yolox.core.trainer import NonFiniteLossError, Trainer

__all__ = ["NonFiniteLossError", "Trainer", "WorkerError", "launch"]
