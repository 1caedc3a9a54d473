"""What a study runs: its variants (named override sets), seeds, run folders, shards and its plan file."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolox.models.attention import normalize_attention_name
from yolox.study.design import Design
from yolox.study.halving import HalvingRule, build_rule
from yolox.utils.errors import UserError
from yolox.utils.files import create_json_exclusively, write_json_atomically

PLAN_FILE = "study_plan.json"
BASELINE_NAME = "none"
SELECTIONS = ("last", "best")
CORRECTIONS = ("holm", "bonferroni", "none")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
# A comma starts a new override only when a "key:" follows, so tuple values such as dark4,dark5 stay whole.
_OVERRIDE_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*:)")


@dataclass(frozen=True)
class Variant:
    """A named set of exp overrides; ``none`` is attention off."""

    name: str
    overrides: tuple[tuple[str, str], ...]

    def override_args(self) -> list[str]:
        """The overrides as trailing ``key value`` command-line pairs."""
        return [text for pair in self.overrides for text in pair]


def _closest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def parse_variant(spec: str, attentions: list[str]) -> Variant:
    """``cam``, ``none`` or ``NAME=key:value,key:value`` as a :class:`Variant`; a bad spec is a UserError."""
    spec = spec.strip()
    if "=" in spec:
        name, _, body = spec.partition("=")
        name = name.strip()
        overrides = []
        for item in _OVERRIDE_SPLIT.split(body):
            key, colon, value = item.partition(":")
            if not colon or not key.strip() or not value.strip():
                raise UserError(f"variant {spec!r}: override {item!r} is not of the form key:value "
                                "(e.g. cam@neck=attention:cam,attention_position:neck)")
            overrides.append((key.strip(), value.strip()))
    else:
        name = normalize_attention_name(spec)  # the exp's own spelling rule: --variants CAM is attention cam
        if name == BASELINE_NAME:
            overrides = [("attention", "None")]
        elif name in attentions:
            overrides = [("attention", name)]
        else:
            raise UserError(f"unknown variant {name!r}: not an attention ({', '.join(attentions)}) nor 'none'"
                            f"{_closest(name, [*attentions, BASELINE_NAME])}; a named set is written "
                            "NAME=key:value,key:value")
    if not _VARIANT_NAME.match(name):
        raise UserError(f"variant name {name!r} must start with a letter or digit and use only letters, digits "
                        "and _ . @ + - (it names a folder)")
    return Variant(name, tuple(overrides))


def parse_variants(text: str, attentions: list[str]) -> list[Variant]:
    """The ``--variants`` list: specs separated by commas (a named set's own commas stay with it)."""
    specs: list[str] = []
    for piece in text.split(","):
        # A piece that is a bare key:value continues the named set before it.
        if specs and "=" in specs[-1] and re.match(r"^\s*[A-Za-z_]\w*\s*:", piece) and "=" not in piece:
            specs[-1] += "," + piece
        elif specs and "=" in specs[-1] and ":" not in piece and "=" not in piece and not _is_variant_word(piece, attentions):
            specs[-1] += "," + piece  # a tuple value such as attention_levels:dark4,dark5
        else:
            specs.append(piece)
    variants = [parse_variant(spec, attentions) for spec in specs if spec.strip()]
    names = [variant.name for variant in variants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"--variants names {', '.join(duplicates)} more than once")
    if not variants:
        raise UserError("--variants is empty: give e.g. none,cam,se")
    return variants


def _is_variant_word(piece: str, attentions: list[str]) -> bool:
    word = normalize_attention_name(piece)
    return word == BASELINE_NAME or word in attentions


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` (or a range ``0-4``) as a list of distinct non-negative seeds."""
    seeds: list[int] = []
    for piece in text.split(","):
        piece = piece.strip()
        try:
            if re.fullmatch(r"\d+-\d+", piece):
                first, last = (int(part) for part in piece.split("-"))
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(piece))
        except ValueError:
            raise UserError(f"--seeds {text!r}: {piece!r} is not a whole number (e.g. --seeds 0,1,2)") from None
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: give distinct non-negative whole numbers, e.g. 0,1,2")
    return seeds


def parse_shard(text: str | None) -> tuple[int, int]:
    """``I/N`` with 0 <= I < N; None means the whole study (0/1)."""
    if text is None:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise UserError(f"--shard {text!r} must be I/N with 0 <= I < N, e.g. 0/4 "
                        "(with SLURM: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Run:
    """One (variant, seed) of the study and its folder ``<study_dir>/<variant>/seed<k>``."""

    index: int
    variant: Variant
    seed: int
    study_dir: Path

    @property
    def variant_dir(self) -> Path:
        return self.study_dir / self.variant.name

    @property
    def experiment_name(self) -> str:
        return f"seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return self.variant_dir / self.experiment_name

    @property
    def label(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"


@dataclass
class StudyPlan:
    """Everything that defines a study; two invocations may share a folder only if these agree."""

    exp: str
    exp_name: str
    variants: list[Variant]
    seeds: list[int]
    baseline: str
    batch_size: int
    fp16: bool
    overrides: list[str] = field(default_factory=list)
    select: str = "last"
    correction: str = "holm"
    margin: float = 0.0  # AP as a fraction (0.003 = 0.3 AP points); 0 = no margin, no equivalence test
    design: Design = field(default_factory=Design)
    halving: HalvingRule = field(default_factory=HalvingRule)

    def schedule_overrides(self) -> list[str]:
        """The overrides every run gets before its variant's: the design's defaults, the study's, the fine-tune's."""
        return self.design.run_overrides(self.overrides)

    def runs(self, study_dir: Path) -> list[Run]:
        """All runs, seed by seed (every variant of seed 0 first), so early runs already form pairs."""
        ordered = [(variant, seed) for seed in self.seeds for variant in self.variants]
        return [Run(index, variant, seed, study_dir) for index, (variant, seed) in enumerate(ordered)]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored in ``study_plan.json``."""
        return {"exp": self.exp, "exp_name": self.exp_name,
                "variants": {variant.name: [list(pair) for pair in variant.overrides] for variant in self.variants},
                "seeds": list(self.seeds), "baseline": self.baseline, "batch_size": self.batch_size,
                "fp16": self.fp16, "overrides": list(self.overrides), "select": self.select,
                "correction": self.correction, "margin": self.margin, "design": self.design.to_dict(),
                "halving": self.halving.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyPlan:
        """The plan stored in ``study_plan.json``."""
        variants = [Variant(name, tuple(tuple(pair) for pair in pairs)) for name, pairs in data["variants"].items()]
        # Plans written before the estimand was declared scored the best checkpoint, uncorrected.
        return cls(data["exp"], data["exp_name"], variants, list(data["seeds"]), data["baseline"],
                   int(data["batch_size"]), bool(data["fp16"]), list(data.get("overrides", [])),
                   data.get("select", "best"), data.get("correction", "none"), float(data.get("margin", 0.0)),
                   Design.from_dict(data.get("design")), HalvingRule.from_dict(data.get("halving")))


def shard_runs(runs: list[Run], shard: tuple[int, int], contiguous: bool = False) -> list[Run]:
    """Every N-th run starting at I; with ``contiguous`` (lockstep) the I-th of N equal slices of the runs in
    seed order, so that a shard's runs of a seed train as one group and at most one seed is cut in two."""
    first, count = shard
    if contiguous:
        return runs[len(runs) * first // count:len(runs) * (first + 1) // count]
    return [run for run in runs if run.index % count == first]


def read_plan_file(path: Path) -> dict[str, Any]:
    """The validated content of a ``study_plan.json``."""
    from yolox.study.records import PLAN_ADVICE, load_json_file, validate_plan

    return validate_plan(load_json_file(path, PLAN_ADVICE), path, SELECTIONS, CORRECTIONS)


def load_plan(study_dir: Path) -> StudyPlan:
    """The plan of an existing study folder, or a UserError saying it is not one (or naming its bad field)."""
    path = Path(study_dir) / PLAN_FILE
    if not path.is_file():
        raise UserError(f"{study_dir} is not a study folder (no {PLAN_FILE}): give the folder tools/study.py trained into")
    return StudyPlan.from_dict(read_plan_file(path))


def claim_study_dir(study_dir: Path, plan: StudyPlan, force: bool) -> None:
    """Record ``plan`` in the folder; refuse a folder made with another plan unless ``force``.

    The plan file is created exclusively: of shards started at the same instant with different settings,
    one creates it and the others compare against what it wrote.
    """
    path = Path(study_dir) / PLAN_FILE
    wanted = plan.to_dict()
    if create_json_exclusively(path, wanted):
        return
    stored = read_plan_file(path)
    differing = [key for key in wanted if stored.get(key) != wanted[key]]
    if not differing:
        return
    if not force:
        details = "; ".join(f"{key}: folder has {stored.get(key)!r}, now {wanted[key]!r}" for key in differing)
        raise UserError(f"study folder {study_dir} was made with other settings ({details}): use another "
                        "--study-dir, or --force to mix runs of both")
    write_json_atomically(path, wanted)


def load_variant_exp(exp_file: str | None, exp_name: str | None, overrides: list[str]) -> Any:
    """The exp of ``-f``/``-n`` with ``overrides`` applied (importing an exp file registers its blocks)."""
    from yolox.exp import get_exp

    exp = get_exp(exp_file, exp_name)
    exp.merge(overrides)
    return exp


def build_plan(exp_file: str | None, exp_name: str | None, variants: str, seeds: str, *, baseline: str | None = None,
               batch_size: int = 64, fp16: bool = False, overrides: list[str] | None = None,
               study_dir: str | None = None, select: str = "last", correction: str = "holm",
               margin_points: float = 0.0, design: Design | None = None,
               halving: str | None = None) -> tuple[StudyPlan, Path]:
    """Check every variant's exp (unknown names and keys fail here, before training); return the plan and folder.

    ``margin_points`` is in AP points (percent); the plan stores it as a fraction like every AP.
    """
    if not (exp_file or exp_name):
        raise UserError("name the exp with -f EXP_FILE or -n NAME (e.g. -f exps/example/shapes/yolox_nano_cam_shapes.py)")
    if select not in SELECTIONS:
        raise UserError(f"--select {select!r}: use last (the final checkpoint) or best (selected on the scored set)")
    if correction not in CORRECTIONS:
        raise UserError(f"--correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    if not margin_points >= 0:
        raise UserError(f"--margin {margin_points}: give a non-negative number of AP points, e.g. 0.3 (0 = off)")
    if batch_size < 1:
        raise UserError(f"-b/--batch-size {batch_size} must be at least 1")
    overrides = list(overrides or [])
    base_exp = load_variant_exp(exp_file, exp_name, overrides)  # first: an exp file may register attention blocks
    from yolox.models.attention import available_attentions

    parsed = parse_variants(variants, available_attentions())
    names = [variant.name for variant in parsed]
    baseline = baseline or (BASELINE_NAME if BASELINE_NAME in names else names[0])
    if baseline not in names:
        raise UserError(f"--baseline {baseline!r} is not among the variants ({', '.join(names)})")
    design = design or Design()
    run_overrides = design.run_overrides(overrides)
    for variant in parsed:
        try:
            load_variant_exp(exp_file, exp_name, [*run_overrides, *variant.override_args()])
        except UserError as err:
            raise UserError(f"variant {variant.name!r}: {err}") from None
    if design.kind == "baseline":
        baseline_variant = next(variant for variant in parsed if variant.name == baseline)
        try:
            load_variant_exp(exp_file, exp_name, [*design.init_run_overrides(overrides), *baseline_variant.override_args()])
        except UserError as err:
            raise UserError(f"the init run (--init-from baseline, --init-overrides): {err}") from None
    plan = StudyPlan(exp=exp_file or exp_name, exp_name=base_exp.exp_name, variants=parsed, seeds=parse_seeds(seeds),
                     baseline=baseline, batch_size=batch_size, fp16=bool(fp16), overrides=overrides, select=select,
                     correction=correction, margin=margin_points / 100.0, design=design,
                     halving=build_rule(halving, load_variant_exp(exp_file, exp_name, run_overrides).max_epoch))
    folder = Path(study_dir) if study_dir else Path(base_exp.output_dir) / f"{base_exp.exp_name}_study"
    return plan, folder
