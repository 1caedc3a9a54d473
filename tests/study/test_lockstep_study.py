"""``tools/study.py --lockstep``: the variants of a seed trained together give the files and figures of
runs trained one by one, a killed group continues with the same command, a diverging member fails alone."""

import json
from pathlib import Path

import pytest

from yolox.cli.study import main as study_main
from yolox.core.trainer import Trainer
from yolox.study.lockstep import lockstep_groups
from yolox.study.plan import Run, Variant

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
VARIANTS = "none,CAM,boom=attention:se,basic_lr_per_img:10.0"


class SimulatedKill(BaseException):
    """Stands for the study's process being killed in the middle of an epoch."""


def _figures(run_dir: Path) -> tuple[dict, float]:
    """Every train and eval record of metrics.jsonl without its clock fields (the last one of each iteration,
    as a resumed run writes again what the killed one had written after its checkpoint), and the scored AP."""
    records = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["kind"], record["iteration"]] = {key: value for key, value in record.items()
                                                        if key not in ("time", "wall_time_s")}
    return records, json.loads((run_dir / "run.json").read_text())["ap50_95"]


@pytest.mark.slow
def test_a_lockstep_study_equals_the_sequential_one(tmp_path: Path, tiny_overrides, monkeypatch) -> None:
    common = ["-f", SHAPES_EXP, "--variants", VARIANTS, "--seeds", "0", "-b", "4", "--device", "cpu"]
    assert study_main([*common, "--study-dir", str(tmp_path / "one_by_one"), *tiny_overrides]) == 1  # boom fails
    lockstep = [*common, "--study-dir", str(tmp_path / "lockstep"), "--lockstep", *tiny_overrides]
    original_after_iter = Trainer.after_iter

    def killed_in_epoch_two(trainer: Trainer) -> None:
        original_after_iter(trainer)
        if trainer.lockstep and trainer.completed_iters == 6:  # 4 iterations per epoch
            raise SimulatedKill

    monkeypatch.setattr(Trainer, "after_iter", killed_in_epoch_two)
    with pytest.raises(SimulatedKill):
        study_main(lockstep)
    monkeypatch.setattr(Trainer, "after_iter", original_after_iter)
    assert study_main(lockstep) == 1  # the same command continues the group

    for name in ("none", "cam"):
        alone, grouped = (tmp_path / folder / name / "seed0" for folder in ("one_by_one", "lockstep"))
        assert _figures(grouped) == _figures(alone), f"{name}: lockstep differs from training it alone"
        assert "resuming from" in (grouped / "train_log.txt").read_text()
        sessions = json.loads((grouped / "sessions.json").read_text())
        assert [session.get("killed", False) for session in sessions] == [True, False]
        assert sessions[-1]["lockstep"] == ["none/seed0", "cam/seed0"]
    boom = json.loads((tmp_path / "lockstep" / "boom" / "seed0" / "run.json").read_text())
    assert boom["status"] == "failed" and boom["stage"] == "train" and "non-finite" in boom["reason"]
    report = json.loads((tmp_path / "lockstep" / "study.json").read_text())
    assert report["missing"] == [] and report["failures"]["boom"]["0"]["stage"] == "train"


def test_groups_are_the_variants_of_a_seed_at_most_k_at_a_time(tmp_path: Path) -> None:
    variants = [Variant(name, ()) for name in ("none", "cam", "se")]
    runs = [Run(index, variant, seed, tmp_path) for index, (seed, variant) in
            enumerate((seed, variant) for seed in (0, 1) for variant in variants)]
    labels = [[run.label for run in group] for group in lockstep_groups(runs[1:], 2)]
    assert labels == [["cam/seed0", "se/seed0"], ["none/seed1", "cam/seed1"], ["se/seed1"]]
    assert [len(group) for group in lockstep_groups(runs, None)] == [3, 3]


def test_lockstep_size_needs_lockstep(tmp_path: Path, capsys) -> None:
    assert study_main(["-f", SHAPES_EXP, "--variants", "none,cam", "--lockstep-size", "2",
                       "--study-dir", str(tmp_path)]) == 2
    assert "--lockstep-size 2 sizes the groups of --lockstep: add --lockstep" in capsys.readouterr().err
