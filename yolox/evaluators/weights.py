"""Loading weights for evaluation: strict, with a message that names what differs and the fix."""

from pathlib import Path

import torch
from loguru import logger

from yolox.utils.checkpoint import load_checkpoint_file
from yolox.utils.errors import UserError

HEAD_CLASS_KEY = "head.cls_preds.0.weight"
ATTENTION_KEY_PART = ".attn."


def _checkpoint_settings(state: dict) -> tuple[int | None, bool]:
    """The class count and whether attention weights are present, read from a state dict's keys."""
    head = state.get(HEAD_CLASS_KEY)
    return (int(head.shape[0]) if head is not None else None), any(ATTENTION_KEY_PART in k for k in state)


def load_eval_weights(model: torch.nn.Module, ckpt_path: str | Path, exp) -> None:
    """Load ``ckpt["model"]`` (official layout) or a bare state dict strictly, or explain the mismatch."""
    ckpt = load_checkpoint_file(ckpt_path)
    if hasattr(exp, "check_meta"):
        exp.check_meta(ckpt.get("meta"), str(ckpt_path))
    state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or reshaped:
        ckpt_classes, ckpt_attention = _checkpoint_settings(state)
        exp_attention = getattr(exp, "attention", None)
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        raise UserError(
            f"checkpoint {ckpt_path} does not fit the model of exp '{exp.exp_name}': the checkpoint has "
            f"num_classes={ckpt_classes} and {'attention weights' if ckpt_attention else 'no attention'}, the exp builds "
            f"num_classes={exp.num_classes} and attention={exp_attention!r} ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(reshaped)} reshaped tensors, e.g. {examples}). Pass the exp file it was trained with "
            f"(-f exps/...) or override num_classes / attention."
        )
    model.load_state_dict(state, strict=True)
    logger.info(f"loaded checkpoint {ckpt_path}")
