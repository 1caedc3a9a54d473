"""The decoupled YOLOX head: per-level predictions, grid decoding, SimOTA label assignment and losses."""

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from yolox.models.losses import IOUloss
from yolox.models.network_blocks import BaseConv, conv_class
from yolox.utils.boxes import bboxes_iou, meshgrid

# SimOTA constants (YOLOX paper and official defaults).
CENTER_RADIUS = 1.5  # candidate anchors lie within this many strides of a box centre
CANDIDATE_TOPK = 10  # dynamic k = int(sum of the top-10 IoUs of a box)
IOU_COST_WEIGHT = 3.0
OUTSIDE_COST = 1e6  # cost added to pairs whose anchor is outside the box's centre region
REG_WEIGHT = 5.0  # weight of the IoU loss in the total


LossTuple = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Assignment(NamedTuple):
    """SimOTA result for a batch, per anchor: foreground flag, matched box index and its IoU."""

    fg_mask: torch.Tensor  # [B, A] bool
    matched_gt: torch.Tensor  # [B, A] long, meaningful where fg_mask
    matched_iou: torch.Tensor  # [B, A] float, IoU of the prediction with its matched box


class YOLOXHead(nn.Module):
    """Decoupled head: a shared 1x1 stem per level, then two 3x3 conv branches (class; box + objectness).

    Args:
        num_classes: C, the number of object classes.
        width: width multiplier; level i takes ``int(in_channels[i] * width)`` channels and the branches
            have ``int(256 * width)``. Default: 1.0.
        strides: the stride of each input level in input pixels. Default: (8, 16, 32).
        in_channels: the channels of each level at ``width = 1``. Default: (256, 512, 1024).
        act: activation of every conv unit, a name of ``network_blocks.ACTIVATIONS``. Default: "silu".
        depthwise: depthwise-separable 3x3 convolutions. Default: False.
    """

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        strides: Sequence[int] = (8, 16, 32),
        in_channels: Sequence[int] = (256, 512, 1024),
        act: str = "silu",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if len(strides) != len(in_channels):
            raise ValueError(f"YOLOXHead got {len(strides)} strides but {len(in_channels)} input channel counts")
        self.num_classes = int(num_classes)
        self.strides = list(strides)
        self.decode_in_inference = True
        self.use_l1 = False
        Conv = conv_class(depthwise)
        hidden = int(256 * width)

        # Registration order matches the official state dict layout.
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        self.stems = nn.ModuleList()
        for channels in in_channels:
            self.stems.append(BaseConv(int(channels * width), hidden, 1, 1, act=act))
            self.cls_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act)))
            self.reg_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act)))
            self.cls_preds.append(nn.Conv2d(hidden, self.num_classes, 1, 1, 0))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1, 1, 0))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1, 1, 0))

        self.iou_loss = IOUloss(reduction="none")
        self.bcewithlog_loss = nn.BCEWithLogitsLoss(reduction="none")
        self.l1_loss = nn.L1Loss(reduction="none")

    def initialize_biases(self, prior_prob: float) -> None:
        """Set objectness and class biases so that every initial probability equals ``prior_prob``."""
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, bias)

    def forward(
        self, xin: Sequence[torch.Tensor], labels: torch.Tensor | None = None
    ) -> torch.Tensor | LossTuple:
        """Eval: return ``[B, A, 5 + C]`` predictions; train (with ``labels``): return the loss tuple.

        The train-mode tuple is ``(total, 5 x iou, obj, cls, l1, foreground anchors per box)``.

        Args:
            xin: one feature map per level, ``[B, int(in_channels[i] * width), H / strides[i], W / strides[i]]``.
            labels: train mode only, ``[B, max_labels, 5]`` rows of (class, cx, cy, w, h) in input pixels,
                all-zero rows as padding.

        Returns:
            Eval: ``[B, A, 5 + C]`` with A the anchors of all levels (level by level, row-major), each row
            (cx, cy, w, h) in input pixels, objectness and C class probabilities; the box columns stay raw
            offsets when ``decode_in_inference`` is False. Train: six 0-d tensors, as above.
        """
        outputs, raw_boxes, raw_objs, raw_classes, level_shapes = [], [], [], [], []
        for level, x in enumerate(xin):
            x = self.stems[level](x)
            cls_feat = self.cls_convs[level](x)
            reg_feat = self.reg_convs[level](x)
            box = self.reg_preds[level](reg_feat)
            obj = self.obj_preds[level](reg_feat)
            cls = self.cls_preds[level](cls_feat)
            level_shapes.append(x.shape[-2:])
            if self.training:
                # Kept apart: slicing one [B, A, 5 + C] tensor costs a full-size gradient per slice.
                raw_boxes.append(box.flatten(start_dim=2))
                raw_objs.append(obj.flatten(start_dim=1))
                raw_classes.append(cls.flatten(start_dim=2))
            else:
                outputs.append(torch.cat([box, obj.sigmoid(), cls.sigmoid()], 1).flatten(start_dim=2))

        if self.training:
            if labels is None:
                raise ValueError("YOLOXHead in train mode needs labels [B, max_labels, 5]: call model.eval() to predict")
            # Decode and compute the losses in float32, also under autocast, so exp() cannot overflow.
            # Anchors are ordered level by level, row-major inside a level.
            box_outputs = torch.cat(raw_boxes, dim=2).permute(0, 2, 1).float()  # [B, A, 4]
            obj_preds = torch.cat(raw_objs, dim=1).float()  # [B, A]
            cls_preds = torch.cat(raw_classes, dim=2).permute(0, 2, 1).float()  # [B, A, C]
            grids, strides = self._anchor_grid(level_shapes, box_outputs.dtype, box_outputs.device)
            box_preds = self._decode_boxes(box_outputs, grids, strides)
            origin_boxes = box_outputs if self.use_l1 else None
            return self.get_losses(box_preds, obj_preds, cls_preds, origin_boxes, labels, grids, strides)
        # [B, A, 5 + C] with anchors ordered level by level, row-major inside a level.
        output = torch.cat(outputs, dim=2).permute(0, 2, 1)
        if self.decode_in_inference:
            grids, strides = self._anchor_grid(level_shapes, output.dtype, output.device)
            return self._decode(output, grids, strides)
        return output

    def _anchor_grid(
        self, level_shapes: Sequence[tuple[int, int]], dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every anchor's cell (x, y) ``[A, 2]`` and its stride ``[A, 1]``."""
        grids, strides = [], []
        for (height, width), stride in zip(level_shapes, self.strides):
            rows, cols = meshgrid(torch.arange(height, device=device), torch.arange(width, device=device))
            grids.append(torch.stack((cols, rows), dim=2).reshape(-1, 2))
            strides.append(torch.full((grids[-1].shape[0], 1), stride, device=device))
        return torch.cat(grids).to(dtype), torch.cat(strides).to(dtype)

    @staticmethod
    def _decode_boxes(box_outputs: torch.Tensor, grids: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
        """Turn raw box offsets ``[..., 4]`` into (cx, cy, w, h) in input pixels."""
        centers = (box_outputs[..., :2] + grids) * strides
        sizes = torch.exp(box_outputs[..., 2:4]) * strides
        return torch.cat([centers, sizes], dim=-1)

    @classmethod
    def _decode(cls, outputs: torch.Tensor, grids: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
        """Turn raw box offsets into (cx, cy, w, h) in input pixels; other channels pass through."""
        return torch.cat([cls._decode_boxes(outputs[..., :4], grids, strides), outputs[..., 4:]], dim=-1)

    def get_losses(
        self,
        box_preds: torch.Tensor,
        obj_preds: torch.Tensor,
        cls_preds: torch.Tensor,
        origin_boxes: torch.Tensor | None,
        labels: torch.Tensor,
        grids: torch.Tensor,
        strides: torch.Tensor,
    ) -> LossTuple:
        """Assign targets with SimOTA and return ``(total, 5 x iou, obj, cls, l1, fg per box)``.

        Predictions are decoded boxes ``[B, A, 4]``, objectness logits ``[B, A]`` and class logits ``[B, A, C]``.
        """
        if labels.dim() != 3 or labels.shape[0] != box_preds.shape[0] or labels.shape[2] != 5:
            raise ValueError(
                f"labels must be [B={box_preds.shape[0]}, max_labels, 5] rows of (class, cx, cy, w, h), "
                f"got {tuple(labels.shape)}"
            )
        labels = labels.to(box_preds.dtype)
        gt_boxes, gt_classes, gt_valid = self._compact_labels(labels)
        num_gts = gt_valid.sum()
        if gt_valid.any() and int(gt_classes[gt_valid].max()) >= self.num_classes:
            raise ValueError(
                f"a label has class index {int(gt_classes[gt_valid].max())} but the head has "
                f"num_classes={self.num_classes}: class indices must be 0..{self.num_classes - 1}"
            )

        fg_mask, matched_gt, matched_iou = self.get_assignments(
            gt_boxes, gt_classes, gt_valid, box_preds, obj_preds, cls_preds, grids, strides
        )

        num_fg = fg_mask.sum().clamp(min=1).to(box_preds.dtype)
        matched_boxes = torch.gather(gt_boxes, 1, matched_gt.unsqueeze(-1).expand(-1, -1, 4))[fg_mask]
        matched_classes = torch.gather(gt_classes, 1, matched_gt)[fg_mask]
        cls_targets = F.one_hot(matched_classes, self.num_classes).to(box_preds.dtype) * matched_iou[fg_mask].unsqueeze(-1)

        loss_iou = self.iou_loss(box_preds[fg_mask], matched_boxes).sum() / num_fg
        loss_obj = self.bcewithlog_loss(obj_preds, fg_mask.to(box_preds.dtype)).sum() / num_fg
        loss_cls = self.bcewithlog_loss(cls_preds[fg_mask], cls_targets).sum() / num_fg
        if self.use_l1:
            anchor_strides = strides.squeeze(-1).expand_as(fg_mask)[fg_mask]
            anchor_grids = grids.unsqueeze(0).expand(fg_mask.shape[0], -1, -1)[fg_mask]
            l1_targets = self.get_l1_target(matched_boxes, anchor_strides, anchor_grids)
            loss_l1 = self.l1_loss(origin_boxes[fg_mask], l1_targets).sum() / num_fg
        else:
            loss_l1 = box_preds.new_zeros(())

        loss = REG_WEIGHT * loss_iou + loss_obj + loss_cls + loss_l1
        fg_per_box = num_fg / num_gts.clamp(min=1).to(box_preds.dtype)
        return loss, REG_WEIGHT * loss_iou, loss_obj, loss_cls, loss_l1, fg_per_box

    @staticmethod
    def _compact_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move the real boxes (non-zero rows) of each image first and trim to the largest count.

        Returns boxes ``[B, G, 4]`` (cx, cy, w, h), classes ``[B, G]`` (long) and a validity mask ``[B, G]``;
        ``G`` is at least 1 so that a batch without boxes goes through the same code with nothing valid.
        """
        valid = labels.sum(dim=2) > 0
        order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)
        labels = torch.gather(labels, 1, order.unsqueeze(-1).expand(-1, -1, 5))
        valid = torch.gather(valid, 1, order)
        if labels.shape[1] == 0:
            labels, valid = labels.new_zeros(labels.shape[0], 1, 5), valid.new_zeros(valid.shape[0], 1)
        max_gts = max(int(valid.sum(dim=1).max()), 1)
        labels, valid = labels[:, :max_gts], valid[:, :max_gts]
        return labels[..., 1:5], labels[..., 0].long(), valid

    @staticmethod
    def get_l1_target(gt_boxes: torch.Tensor, strides: torch.Tensor, grids: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """Return the raw-output targets of ``gt_boxes``: cell offsets and log sizes in stride units."""
        centers = gt_boxes[:, :2] / strides.unsqueeze(-1) - grids
        sizes = torch.log(gt_boxes[:, 2:] / strides.unsqueeze(-1) + eps)
        return torch.cat([centers, sizes], dim=1)

    @torch.no_grad()
    def get_assignments(
        self,
        gt_boxes: torch.Tensor,
        gt_classes: torch.Tensor,
        gt_valid: torch.Tensor,
        box_preds: torch.Tensor,
        obj_preds: torch.Tensor,
        cls_preds: torch.Tensor,
        grids: torch.Tensor,
        strides: torch.Tensor,
    ) -> Assignment:
        """SimOTA for the whole batch at once (boxes padded to ``G`` per image, ``gt_valid`` marks real ones).

        Candidates are anchors whose centre lies strictly within 1.5 strides of some box centre. Each pair's
        cost is BCE(sqrt(cls x obj), one-hot class) + 3 x (-log IoU) + 1e6 when the anchor is outside that
        box's centre region; each box takes its ``max(1, int(sum of top-10 IoUs))`` cheapest candidates and an
        anchor claimed by several boxes keeps only the box of lowest cost.
        """
        with torch.autocast(device_type=box_preds.device.type, enabled=False):
            gt_boxes, box_preds = gt_boxes.float(), box_preds.float()
            in_center = self._in_center_region(gt_boxes, gt_valid, grids, strides)  # [B, G, A]
            # Only candidates can be picked, and they are usually a small part of the anchors: gather them
            # (in anchor order, padded to the largest count) so the [B, G, N] costs skip the rest.
            candidate = in_center.any(dim=1)  # [B, A]
            num_candidates = candidate.sum(dim=1)
            width = max(int(num_candidates.max()), 1)
            order = torch.argsort((~candidate).to(torch.uint8), dim=1, stable=True)[:, :width]  # [B, N]
            slot_valid = torch.arange(width, device=order.device) < num_candidates.unsqueeze(-1)  # [B, N]
            in_center = torch.gather(in_center, 2, order.unsqueeze(1).expand(-1, in_center.shape[1], -1))
            box_preds = torch.gather(box_preds, 1, order.unsqueeze(-1).expand(-1, -1, 4))
            obj_preds = torch.gather(obj_preds.float(), 1, order)
            cls_preds = torch.gather(cls_preds.float(), 1, order.unsqueeze(-1).expand(-1, -1, cls_preds.shape[2]))
            pair_valid = gt_valid.unsqueeze(-1) & slot_valid.unsqueeze(1)  # [B, G, N]

            ious = bboxes_iou(gt_boxes, box_preds, xyxy=False).masked_fill(~pair_valid, 0.0)
            iou_cost = -torch.log(ious + 1e-8)
            cls_cost = self._class_cost(cls_preds, obj_preds, gt_classes)
            cost = cls_cost + IOU_COST_WEIGHT * iou_cost + OUTSIDE_COST * (~in_center).float()
            cost = cost.masked_fill(~pair_valid, float("inf"))

            batch, num_gts, _ = cost.shape
            top_k = min(CANDIDATE_TOPK, width)
            # Padding and non-candidates have IoU 0, so they add nothing to the top-k sum.
            dynamic_ks = ious.topk(top_k, dim=2).values.sum(dim=2).int().clamp(min=1)
            dynamic_ks = dynamic_ks * gt_valid
            # dynamic k <= top_k, so the top_k cheapest slots contain every box's picks.
            cheapest_cost, cheapest_idx = cost.topk(top_k, dim=2, largest=False)
            ranks = torch.arange(top_k, device=cost.device)
            picked = (ranks < dynamic_ks.unsqueeze(-1)) & torch.isfinite(cheapest_cost)  # [B, G, top_k]

            # Count claims per slot and note the claiming box, without building a [B, G, N] matching.
            slots = cheapest_idx.reshape(batch, -1)
            claims = torch.zeros_like(order).scatter_add_(1, slots, picked.reshape(batch, -1).long())
            gt_index = torch.arange(num_gts, device=cost.device).view(1, -1, 1).expand_as(cheapest_idx)
            claimant = torch.where(picked, gt_index, -1).reshape(batch, -1)
            owner = torch.full_like(order, -1).scatter_reduce_(1, slots, claimant, reduce="amax")
            # A slot claimed by several boxes keeps the box of lowest cost (the first one on a tie).
            lowest_cost_gt = cost.argmin(dim=1)  # [B, N]
            owner = torch.where(claims > 1, lowest_cost_gt, owner).clamp(min=0)
            slot_fg = claims > 0
            slot_iou = torch.gather(ious, 1, owner.unsqueeze(1)).squeeze(1) * slot_fg

            # ``order`` holds distinct anchors per image, so scattering back is a plain write.
            num_anchors = grids.shape[0]
            fg_mask = torch.zeros(batch, num_anchors, dtype=torch.bool, device=cost.device).scatter_(1, order, slot_fg)
            matched_gt = torch.zeros(batch, num_anchors, dtype=torch.long, device=cost.device)
            matched_gt.scatter_(1, order, owner * slot_fg)
            matched_iou = torch.zeros(batch, num_anchors, dtype=ious.dtype, device=cost.device)
            matched_iou.scatter_(1, order, slot_iou)
        return Assignment(fg_mask, matched_gt, matched_iou)

    @staticmethod
    def _in_center_region(
        gt_boxes: torch.Tensor, gt_valid: torch.Tensor, grids: torch.Tensor, strides: torch.Tensor
    ) -> torch.Tensor:
        """Return ``[B, G, A]``: whether each anchor centre lies strictly within 1.5 strides of a real box's centre."""
        centers = (grids + 0.5) * strides  # [A, 2]
        radius = (CENTER_RADIUS * strides).squeeze(-1)  # [A]
        in_center = gt_valid.unsqueeze(-1)
        for axis in (0, 1):
            gt_center = gt_boxes[..., axis : axis + 1]  # [B, G, 1]
            anchor_center = centers[:, axis]
            in_center = in_center & (anchor_center - (gt_center - radius) > 0)
            in_center = in_center & ((gt_center + radius) - anchor_center > 0)
        return in_center

    @staticmethod
    def _class_cost(cls_logits: torch.Tensor, obj_logits: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
        """Return ``[B, G, A]``: BCE of sqrt(sigmoid(cls) x sigmoid(obj)) against each box's one-hot class.

        The sum over classes splits into sum_c -log(1 - p_c) (shared by every box) plus the correction at the
        box's class, so no ``[B, G, A, C]`` tensor is built. Logs are clamped at -100 like ``F.binary_cross_entropy``.
        """
        probs = (cls_logits.sigmoid() * obj_logits.sigmoid().unsqueeze(-1)).sqrt()  # [B, A, C]
        neg_log_not = -torch.log1p(-probs).clamp(min=-100.0)
        neg_log = -torch.log(probs).clamp(min=-100.0)
        correction = (neg_log - neg_log_not).transpose(1, 2)  # [B, C, A]
        index = gt_classes.clamp(min=0).unsqueeze(-1).expand(-1, -1, correction.shape[2])
        return neg_log_not.sum(dim=2).unsqueeze(1) + torch.gather(correction, 1, index)
