"""The study's files as validated data: every file the study reads is checked before it is used.

A file that is not what the study wrote (truncated by a full disk, edited by hand, garbage) gives one
:class:`StudyFileError` line naming the file and the field, never a traceback. AP is a fraction wherever it
is stored, so a finite AP outside [0, 1] (an edited 5.0, a percent written by another tool) is refused;
NaN stays allowed (an evaluation that produced no number), and COCO's -1 (no objects of that size) is allowed
in the per-size ``stats`` only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolox.utils.errors import UserError


class StudyFileError(UserError):
    """A study file that cannot be used as it is: the message names the file, the field and what to do."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_json_file(path: Path, advice: str) -> Any:
    """The JSON value stored in ``path``; unreadable, empty or invalid JSON is a StudyFileError ending in ``advice``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not text (garbage bytes); {advice}") from None
    except OSError as err:
        raise StudyFileError(f"{path}: cannot be read ({err.strerror}); {advice}") from None
    if not text.strip():
        raise StudyFileError(f"{path}: empty (a write that never finished); {advice}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise StudyFileError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}: "
                             f"truncated or edited); {advice}") from None


class Fields:
    """Checks the fields of one JSON object of ``path``; every failure names the file and the field."""

    def __init__(self, data: Any, path: Path, advice: str, where: str = "") -> None:
        """``where`` prefixes field names of a nested object (``scored.last.``)."""
        self.path, self.advice, self.where = Path(path), advice, where
        if not isinstance(data, dict):
            raise StudyFileError(f"{path}: {where.rstrip('.') or 'the file'} should be a JSON object, "
                                 f"found {type(data).__name__}; {advice}")
        self.data = data

    def fail(self, key: str, problem: str) -> None:
        """Raise the one-line error of field ``key``."""
        value = self.data.get(key, None)
        shown = f" = {_shown(value)}" if key in self.data else ""
        raise StudyFileError(f"{self.path}: field {self.where}{key}{shown} {problem}; {self.advice}")

    def get(self, key: str, check: Callable[[Any], bool], expected: str, required: bool = True,
            default: Any = None) -> Any:
        """The value of ``key`` when ``check`` accepts it (``default`` when absent and not required)."""
        if key not in self.data:
            if required:
                self.fail(key, f"is missing (expected {expected})")
            return default
        value = self.data[key]
        if not check(value):
            self.fail(key, f"is not {expected}")
        return value

    def nested(self, key: str, required: bool = True) -> Fields | None:
        """The checker of the object stored under ``key`` (None when absent and not required)."""
        if key not in self.data and not required:
            return None
        return Fields(self.get(key, lambda value: isinstance(value, dict), "an object"), self.path, self.advice,
                      f"{self.where}{key}.")


def is_int(value: Any) -> bool:
    """A JSON whole number (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_non_negative(value: Any) -> bool:
    """A finite number >= 0."""
    return is_number(value) and math.isfinite(value) and value >= 0


def is_fraction(value: Any) -> bool:
    """An AP as stored: a number in [0, 1], or NaN."""
    return is_number(value) and (math.isnan(value) or 0.0 <= value <= 1.0)


def is_coco_stat(value: Any) -> bool:
    """A COCOeval figure: a fraction, or -1 for 'no objects of that size'."""
    return is_fraction(value) or (is_number(value) and value == -1)


def is_optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``check`` that also accepts null."""
    return lambda value: value is None or check(value)


def is_text(value: Any) -> bool:
    """A JSON string."""
    return isinstance(value, str)


def is_list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A JSON list whose items all pass ``check``."""
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


FRACTION = "a fraction of AP in [0, 1] (AP is stored as a fraction, not in %)"
RUN_ADVICE = "the run counts as not done: the study command trains it again (the file is kept as corrupt_run<k>.json)"


def _check_stats(fields: Fields, key: str, required: bool) -> None:
    stats = fields.nested(key, required=required)
    if stats is not None:
        for name in list(stats.data):
            stats.get(name, is_coco_stat, "a COCO figure in [0, 1] (or -1: no objects of that size)")


def validate_run_record(data: Any, path: Path) -> dict:
    """A run's ``run.json``: ``status`` done (with its AP figures) or failed (stage, iteration, reason)."""
    fields = Fields(data, path, RUN_ADVICE)
    status = fields.get("status", lambda value: value in ("done", "failed"), "'done' or 'failed'", required=False,
                        default="done")
    fields.get("variant", is_text, "a variant name", required=False)
    fields.get("seed", lambda value: is_int(value) and value >= 0, "a non-negative whole number", required=False)
    fields.get("train_seconds", is_optional(is_non_negative), "a number of seconds >= 0", required=False)
    fields.get("sessions", lambda value: is_int(value) and value >= 0, "a count of sessions", required=False)
    if status == "failed":
        fields.get("stage", is_text, "the stage that failed ('train' or 'eval')")
        fields.get("iteration", is_optional(lambda value: is_int(value) and value >= 0), "an iteration or null",
                   required=False)
        fields.get("reason", is_text, "a text")
        return data
    fields.get("ap50_95", is_fraction, FRACTION)
    fields.get("ap50", is_optional(is_fraction), FRACTION, required=False)
    fields.get("detections", is_text, "a file name", required=False)
    _check_stats(fields, "stats", required=False)
    scored = fields.nested("scored", required=False)
    if scored is not None:
        for which in list(scored.data):
            entry = scored.nested(which)
            entry.get("ap50_95", is_fraction, FRACTION)
            entry.get("ap50", is_optional(is_fraction), FRACTION, required=False)
            entry.get("checkpoint", is_text, "a checkpoint file name", required=False)
            _check_stats(entry, "stats", required=False)
    return data


def read_run_record(path: Path) -> dict:
    """The validated ``run.json`` at ``path``."""
    return validate_run_record(load_json_file(path, RUN_ADVICE), path)


PLAN_ADVICE = "restore it, or start the study in a new --study-dir"


def validate_plan(data: Any, path: Path, selections: tuple[str, ...], corrections: tuple[str, ...]) -> dict:
    """``study_plan.json``: the exp, the variants' override pairs, seeds, baseline, batch, estimand."""
    fields = Fields(data, path, PLAN_ADVICE)
    fields.get("exp", lambda value: isinstance(value, str) and bool(value), "an exp file or name")
    fields.get("exp_name", is_text, "the exp's name")
    is_pair = is_list_of(is_text)
    variants = fields.get("variants", lambda value: isinstance(value, dict) and bool(value) and all(
        isinstance(pairs, list) and all(is_pair(pair) and len(pair) == 2 for pair in pairs) for pairs in value.values()),
        "an object of variant name -> [[key, value], ...]")
    fields.get("seeds", lambda value: is_list_of(lambda seed: is_int(seed) and seed >= 0)(value) and bool(value)
               and len(set(value)) == len(value), "a list of distinct non-negative whole numbers")
    fields.get("baseline", lambda value: value in variants, "one of the variants")
    fields.get("batch_size", lambda value: is_int(value) and value >= 1, "a whole number >= 1")
    fields.get("fp16", lambda value: isinstance(value, bool), "true or false")
    fields.get("overrides", is_list_of(is_text), "a list of texts", required=False)
    fields.get("select", lambda value: value in selections, " or ".join(selections), required=False)
    fields.get("correction", lambda value: value in corrections, ", ".join(corrections), required=False)
    fields.get("margin", lambda value: is_non_negative(value) and value <= 1, "a fraction of AP in [0, 1]",
               required=False)
    design = fields.nested("design", required=False)
    if design is not None:
        design.get("init_from", is_optional(is_text), "null, a checkpoint path or 'baseline'", required=False)
        design.get("init_sha256", is_optional(is_text), "null or a sha256 in hex", required=False)
        design.get("init_seed", lambda value: is_int(value) and value >= 0, "a non-negative whole number", required=False)
        for key in ("init_overrides", "finetune"):
            design.get(key, is_list_of(is_text), "a list of texts", required=False)
    halving = fields.nested("halving", required=False)
    if halving is not None:
        halving.get("fractions", is_list_of(lambda value: is_number(value) and 0 < value < 1), "a list of fractions",
                    required=False)
        halving.get("epochs", is_list_of(lambda value: is_int(value) and value >= 1), "a list of epochs", required=False)
        halving.get("total_epochs", lambda value: is_int(value) and value >= 0, "a whole number", required=False)
    return data


def _read_list_of_objects(path: Path, what: str, advice: str) -> list[Fields]:
    """The checkers of the objects of a file that holds a JSON list (``what``: its items, for the message)."""
    data = load_json_file(path, advice)
    if not isinstance(data, list):
        raise StudyFileError(f"{path}: should be a list of {what}, found {type(data).__name__}; {advice}")
    return [Fields(item, path, advice, f"[{index}].") for index, item in enumerate(data)]


SESSIONS_ADVICE = "it records the run's training sessions: delete it to count this run's training time from now on"


def read_sessions(path: Path) -> list[dict]:
    """``sessions.json``: the training sessions of a run, each with its start and (once it ended) end time."""
    sessions = _read_list_of_objects(path, "sessions", SESSIONS_ADVICE)
    for fields in sessions:
        start = fields.get("start", is_non_negative, "a time in seconds")
        fields.get("end", is_optional(lambda value, start=start: is_non_negative(value) and value >= start),
                   "null or a time at or after the start", required=False)
        fields.get("killed", lambda value: isinstance(value, bool), "true or false", required=False)
        fields.get("resumed", lambda value: isinstance(value, bool), "true or false", required=False)
        fields.get("exit_code", is_optional(is_int), "an exit code", required=False)
    return [fields.data for fields in sessions]


LOOKS_ADVICE = "it logs the earlier reports (looks) of the study: restore it, or delete it to start the log again"


def read_looks(path: Path) -> list[dict]:
    """``looks.json``: one entry per report written so far, with the seeds the plan had then."""
    looks = _read_list_of_objects(path, "looks", LOOKS_ADVICE)
    for fields in looks:
        fields.get("number", lambda value: is_int(value) and value >= 1, "a look number >= 1")
        fields.get("plan_seeds", is_list_of(is_int), "a list of seeds")
        fields.get("time", is_text, "a time")
    return [fields.data for fields in looks]


VARIANTS_ADVICE = "run tools/study.py report --remeasure STUDY_DIR to measure the variants again"


def read_variant_record(path: Path) -> dict:
    """The study's record of each variant's model: params, GFLOPs, latency (where and when), classes, settings."""
    data = load_json_file(path, VARIANTS_ADVICE)
    fields = Fields(data, path, VARIANTS_ADVICE)
    variants = fields.nested("variants")
    for name in list(variants.data):
        entry = variants.nested(name)
        entry.get("params", lambda value: is_int(value) and value >= 0, "a parameter count")
        entry.get("gflops", is_non_negative, "a number >= 0")
        entry.get("cpu_ms", is_non_negative, "milliseconds >= 0")
        entry.get("gpu_ms", is_optional(is_non_negative), "null or milliseconds >= 0", required=False)
        entry.get("num_classes", lambda value: is_int(value) and value >= 1, "a class count")
        entry.get("class_names", is_optional(is_list_of(is_text)), "null or a list of names")
        entry.get("settings", lambda value: isinstance(value, dict), "an object of exp settings")
        measured = entry.nested("measured")
        for key in ("time", "host", "device"):
            measured.get(key, is_text, "a text")
    return data


def check_eval_record(record: dict) -> bool:
    """Whether a metrics.jsonl evaluation record has a usable epoch and AP (a fraction or null)."""
    return is_int(record.get("epoch")) and record["epoch"] >= 0 and is_optional(is_fraction)(record.get("ap50_95"))
