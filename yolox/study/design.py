"""How a study's runs start: from scratch, or fine-tuned from one shared detector (a checkpoint, or its own baseline).

In the fine-tune design every run loads the same checkpoint non-strictly before training (the attention tensors
are the only new ones) and ``attention_init`` defaults to ``identity``, so every variant starts at the shared
detector's outputs. With ``--init-from baseline`` the study first trains its baseline variant once (the
*init run*, in ``<study_dir>/_init/seed<k>``) and every run, the baseline's included, fine-tunes its final
checkpoint with the ``--finetune`` schedule. The checkpoint's sha256 is kept in ``study_plan.json``; a file
that changed afterwards is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolox.utils.errors import UserError
from yolox.utils.files import write_json_atomically
from yolox.utils.run_files import LAST_EPOCH_CKPT

if TYPE_CHECKING:
    from yolox.study.plan import Run, StudyPlan

INIT_BASELINE = "baseline"
# Starts with "_", which no variant name may: the init run's folder never collides with a variant's.
INIT_DIR = "_init"
INIT_CHECKPOINT = LAST_EPOCH_CKPT  # the init run's final weights
# Lowest priority: the study's own overrides and a variant's may set attention_init paper.
FINETUNE_DEFAULTS = ("attention_init", "identity")
DESIGN_WORDS = {"scratch": "every run trained from scratch (random init)",
                "checkpoint": "every run fine-tuned from one shared checkpoint",
                "baseline": "the baseline trained once, then every run (the baseline's included) fine-tuned from it"}


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_overrides(pieces: list[str] | None, flag: str) -> tuple[str, ...]:
    """``key value`` pairs given as separate words or as one quoted string; an odd count is a UserError."""
    words = tuple(word for piece in pieces or [] for word in piece.split())
    if len(words) % 2:
        raise UserError(f"{flag} takes 'key value' pairs, got an odd count: {' '.join(words)} "
                        f"(e.g. {flag} max_epoch 30 warmup_epochs 1 no_aug_epochs 5)")
    return words


@dataclass(frozen=True)
class Design:
    """The study's design: ``init_from`` None (scratch), a checkpoint path, or ``baseline``."""

    init_from: str | None = None
    init_sha256: str | None = None
    init_seed: int = 0
    init_overrides: tuple[str, ...] = ()
    finetune: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``scratch``, ``checkpoint`` or ``baseline``."""
        if self.init_from is None:
            return "scratch"
        return "baseline" if self.init_from == INIT_BASELINE else "checkpoint"

    def run_overrides(self, study_overrides: list[str]) -> list[str]:
        """The exp overrides every study run gets before its variant's: design defaults, the study's, the fine-tune's."""
        if self.kind == "scratch":
            return list(study_overrides)
        return [*FINETUNE_DEFAULTS, *study_overrides, *self.finetune]

    def init_run_overrides(self, study_overrides: list[str]) -> list[str]:
        """The overrides of the init run (``--init-from baseline``): the study's, then ``--init-overrides``."""
        return [*study_overrides, *self.init_overrides]

    def init_dir(self, study_dir: Path) -> Path:
        """The init run's folder."""
        return Path(study_dir) / INIT_DIR / f"seed{self.init_seed}"

    def checkpoint(self, study_dir: Path) -> Path | None:
        """The checkpoint every run starts from (None from scratch)."""
        if self.kind == "scratch":
            return None
        if self.kind == "baseline":
            return self.init_dir(study_dir) / INIT_CHECKPOINT
        return Path(self.init_from)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, as ``study_plan.json`` stores it."""
        return {"init_from": self.init_from, "init_sha256": self.init_sha256, "init_seed": self.init_seed,
                "init_overrides": list(self.init_overrides), "finetune": list(self.finetune)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Design:
        """The design stored in a plan (a plan without one is from scratch)."""
        data = data or {}
        return cls(data.get("init_from"), data.get("init_sha256"), int(data.get("init_seed", 0)),
                   tuple(data.get("init_overrides", ())), tuple(data.get("finetune", ())))

    def describe(self, study_dir: Path | None = None) -> str:
        """One line for the report: the design, its checkpoint and sha256, the schedules."""
        text = DESIGN_WORDS[self.kind]
        if self.kind == "scratch":
            return text
        if self.kind == "baseline":
            source = f"`{INIT_DIR}/seed{self.init_seed}/{INIT_CHECKPOINT}` (the baseline, seed {self.init_seed}"
            source += f", overrides `{' '.join(self.init_overrides)}`)" if self.init_overrides else ")"
        else:
            source = f"`{self.init_from}`"
        finetune = " ".join(self.finetune) or "(the study's schedule)"
        sha = self.init_sha256 or "not recorded yet"
        return (f"{text}: checkpoint {source}, sha256 `{sha}`; fine-tune schedule `{finetune}`; attention_init "
                "identity unless a variant sets it")


def build_design(init_from: str | None, init_seed: int = 0, init_overrides: list[str] | None = None,
                 finetune: list[str] | None = None) -> Design:
    """The design of ``--init-from`` (a checkpoint's sha256 is taken now); bad input is a UserError."""
    init_pairs = split_overrides(init_overrides, "--init-overrides")
    finetune_pairs = split_overrides(finetune, "--finetune")
    if init_from is None:
        if init_pairs or finetune_pairs:
            raise UserError("--init-overrides and --finetune belong to the fine-tune design: add --init-from CKPT "
                            "or --init-from baseline")
        return Design()
    if init_seed < 0:
        raise UserError(f"--init-seed {init_seed}: give a non-negative whole number")
    if init_from == INIT_BASELINE:
        return Design(INIT_BASELINE, None, init_seed, init_pairs, finetune_pairs)
    if init_pairs:
        raise UserError("--init-overrides sets the schedule of the baseline's init run: it needs --init-from baseline")
    path = Path(init_from)
    if not path.is_file():
        raise UserError(f"--init-from {init_from}: no such checkpoint file (give a .pth file or 'baseline')")
    return Design(str(path.resolve()), file_sha256(path), init_seed, (), finetune_pairs)


def _stored_design(study_dir: Path) -> Design | None:
    from yolox.study.plan import PLAN_FILE, load_plan

    if not (Path(study_dir) / PLAN_FILE).is_file():
        return None
    return load_plan(Path(study_dir)).design


def _refuse_changed(path: Path, recorded: str, now: str) -> None:
    raise UserError(f"init checkpoint {path} changed since this study started (study_plan.json has sha256 "
                    f"{recorded[:16]}..., the file now {now[:16]}...): every run must start from the same weights; put "
                    "the original file back or use another --study-dir")


def adopt_recorded_checkpoint(design: Design, study_dir: Path) -> Design:
    """Check the init checkpoint against the sha256 the folder recorded; return the design with that sha256.

    A checkpoint file whose bytes differ from the recorded ones is refused (a UserError), even with ``--force``.
    """
    stored = _stored_design(study_dir)
    if design.kind == "scratch" or stored is None or stored.init_sha256 is None:
        return design
    if stored.kind != design.kind or (design.kind == "checkpoint" and stored.init_from != design.init_from):
        return design  # another design: the plan comparison names the difference
    checkpoint = design.checkpoint(study_dir)
    if design.kind == "checkpoint":
        if design.init_sha256 != stored.init_sha256:
            _refuse_changed(checkpoint, stored.init_sha256, design.init_sha256)
    elif checkpoint.is_file():
        verify_checkpoint(replace(design, init_sha256=stored.init_sha256), study_dir)
    return replace(design, init_sha256=stored.init_sha256)


def verify_checkpoint(design: Design, study_dir: Path) -> None:
    """Refuse (UserError) an init checkpoint whose sha256 is not the recorded one; nothing to do from scratch."""
    checkpoint = design.checkpoint(study_dir)
    if checkpoint is None or design.init_sha256 is None:
        return
    if not checkpoint.is_file():
        raise UserError(f"init checkpoint {checkpoint} is gone: put it back (sha256 {design.init_sha256[:16]}...) "
                        "or use another --study-dir")
    now = file_sha256(checkpoint)
    if now != design.init_sha256:
        _refuse_changed(checkpoint, design.init_sha256, now)


def schedule_epochs(exp: str, overrides: list[str]) -> int:
    """``max_epoch`` of the exp (a file ending in .py, else a name) with ``overrides`` applied."""
    from yolox.study.plan import load_variant_exp

    is_file = exp.endswith(".py")
    return int(load_variant_exp(exp if is_file else None, None if is_file else exp, overrides).max_epoch)


@dataclass(frozen=True)
class StudyCost:
    """What a planned study trains: epochs per run of its design, the init run, the halving floor, and the hours."""

    design: Design
    full_epochs: int  # a from-scratch run, and the init run of --init-from baseline
    run_epochs: int  # each study run: full_epochs from scratch, the fine-tune schedule otherwise
    first_rung_epoch: int | None
    variants: int
    hours_per_epoch: float | None

    def epochs(self, seeds: int) -> int:
        """Epochs of training in all, every run going the whole schedule."""
        return seeds * self.variants * self.run_epochs + (self.full_epochs if self.design.kind == "baseline" else 0)

    def floor_epochs(self, seeds: int) -> int | None:
        """Epochs if every variant but the baseline stops at the first halving rung (None without halving)."""
        if self.first_rung_epoch is None:
            return None
        stopped = seeds * (self.variants - 1) * (self.run_epochs - self.first_rung_epoch)
        return self.epochs(seeds) - stopped

    def describe(self, seeds: int) -> str:
        """The cost sentence of ``tools/study.py plan``."""
        runs = seeds * self.variants
        text = f"{seeds} seeds x {self.variants} variants = {runs} runs of {self.run_epochs} epochs"
        if self.design.kind == "baseline":
            text += f" (fine-tunes) + the baseline's init run of {self.full_epochs} epochs"
        elif self.design.kind == "checkpoint":
            text += " (fine-tunes of the given checkpoint)"
        total = self.epochs(seeds)
        text += f", {total} epochs of training"
        if self.hours_per_epoch is not None:
            text += f", about {total * self.hours_per_epoch:.1f} hours (at {self.hours_per_epoch:.3g} h per epoch)"
        floor = self.floor_epochs(seeds)
        if floor is not None:
            hours = f", {floor * self.hours_per_epoch:.1f} hours" if self.hours_per_epoch is not None else ""
            text += (f"; with halving, down to {floor} epochs{hours} if every variant but the baseline stops at the "
                     f"first rung (epoch {self.first_rung_epoch})")
        if self.hours_per_epoch is None:
            text += " (give --hours-per-run or a --pilot with recorded train times for the hours)"
        return text



def init_run(plan: StudyPlan, study_dir: Path) -> tuple[StudyPlan, Run]:
    """The init run of ``--init-from baseline`` as a plan and run of their own (the baseline variant, full schedule)."""
    from yolox.study.halving import HalvingRule
    from yolox.study.plan import Run, Variant

    baseline = next(variant for variant in plan.variants if variant.name == plan.baseline)
    init_plan = replace(plan, overrides=plan.design.init_run_overrides(plan.overrides), design=Design(),
                        halving=HalvingRule())
    return init_plan, Run(-1, Variant(INIT_DIR, baseline.overrides), plan.design.init_seed, Path(study_dir))


def record_init_checkpoint(plan: StudyPlan, study_dir: Path) -> StudyPlan:
    """After the init run: its final checkpoint's sha256 goes into the plan and ``study_plan.json``."""
    from yolox.study.plan import PLAN_FILE

    checkpoint = plan.design.checkpoint(study_dir)
    if plan.design.init_sha256 is not None:
        verify_checkpoint(plan.design, study_dir)
        return plan
    recorded = replace(plan, design=replace(plan.design, init_sha256=file_sha256(checkpoint)))
    write_json_atomically(Path(study_dir) / PLAN_FILE, recorded.to_dict())
    return recorded
