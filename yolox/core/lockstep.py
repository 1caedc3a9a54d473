"""Lockstep groups: several members trained by one loop from one data stream, and what they must share.

The loop takes its data, schedule length, multiscale draws and evaluation cadence from the first member's
exp, so the members may differ in their model, optimizer and schedule shape, not in those settings.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from yolox.utils.errors import UserError

# The exp settings the shared loop and data stream read from the first member: every member must agree.
SHARED_SETTINGS = (
    "seed", "max_epoch", "no_aug_epochs", "eval_interval", "print_interval", "save_history_ckpt",
    "input_size", "multiscale_range", "random_size", "num_classes", "class_names",
    "data_dir", "dataset_format", "data_yaml", "train_ann", "train_name", "voc_train_sets", "data_num_workers",
    "skip_bad_images", "mosaic_prob", "mixup_prob", "hsv_prob", "flip_prob", "degrees", "translate",
    "mosaic_scale", "mixup_scale", "shear", "enable_mixup",
)


def member_label(run_dir: Path) -> str:
    """How logs name the member training into ``run_dir``: ``<variant>/<seed>`` in a study folder."""
    return f"{run_dir.parent.name}/{run_dir.name}"


def check_lockstep_group(exps: Sequence[Any], run_dirs: Sequence[Path]) -> None:
    """A UserError when two members share a run folder or differ in a setting of the shared loop."""
    labels = [member_label(run_dir) for run_dir in run_dirs]
    if len(set(labels)) < len(labels):
        raise UserError(f"the members of a lockstep group train into folders {', '.join(map(str, run_dirs))}: "
                        "give each its own <variant>/<experiment> folder (output_dir, -expn)")
    first = exps[0].public_settings()
    for label, exp in zip(labels[1:], exps[1:]):
        settings = exp.public_settings()
        differing = [key for key in SHARED_SETTINGS if settings.get(key) != first.get(key)]
        if differing:
            key = differing[0]
            raise UserError(f"lockstep member {label} has {key} {settings.get(key)!r}, member {labels[0]} "
                            f"{first.get(key)!r}: the members share one data stream and schedule, so they must "
                            "agree on it; train this variant outside the group (--lockstep-size 1) or drop the "
                            "override")


def group_does_not_fit(labels: Sequence[str], failing: int, peaks_mb: Sequence[float],
                       device: torch.device) -> UserError:
    """The error for a group whose ``failing``-th member ran out of device memory, naming every figure."""
    total_mb = torch.cuda.get_device_properties(device).total_memory / 1024**2 if device.type == "cuda" else 0.0
    figures = ", ".join(f"{label} {peak:.0f} MiB" if peak else f"{label} not measured yet"
                        for label, peak in zip(labels, peaks_mb))
    fitting = max(1, min(failing, len(labels) - 1))
    return UserError(
        f"the lockstep group of {len(labels)} members does not fit on {device} ({total_mb:.0f} MiB): "
        f"out of memory in the step of {labels[failing]}; peak device memory of each member's step so far: "
        f"{figures}. Train fewer members per group: --lockstep-size {fitting} (or a smaller batch)"
    )
