"""Variant specs, seeds, shards, run order and the study folder's plan file."""

from pathlib import Path

import pytest

from yolox.study.plan import (
    StudyPlan,
    claim_study_dir,
    parse_seeds,
    parse_shard,
    parse_variants,
    shard_runs,
)
from yolox.utils.errors import UserError

ATTENTIONS = ["cam", "cbam", "eca", "se"]


def test_plain_and_named_variants():
    variants = parse_variants("none,cam,cam@neck=attention:cam,attention_position:neck,"
                              "late=attention:se,attention_levels:dark4,dark5,eca", ATTENTIONS)
    assert [variant.name for variant in variants] == ["none", "cam", "cam@neck", "late", "eca"]
    assert variants[0].override_args() == ["attention", "None"]
    assert variants[2].override_args() == ["attention", "cam", "attention_position", "neck"]
    assert variants[3].override_args() == ["attention", "se", "attention_levels", "dark4,dark5"]


def test_unknown_variant_names_the_closest():
    with pytest.raises(UserError, match="did you mean 'cbam'"):
        parse_variants("none,cbma", ATTENTIONS)


def test_bad_named_set_and_duplicates():
    with pytest.raises(UserError, match="key:value"):
        parse_variants("x=attention", ATTENTIONS)
    with pytest.raises(UserError, match="more than once"):
        parse_variants("cam,cam", ATTENTIONS)


def test_seeds_and_shards():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5") == [3, 4, 5]
    with pytest.raises(UserError, match="distinct"):
        parse_seeds("1,1")
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(UserError, match="I/N"):
        parse_shard("3/3")


def _plan(seeds=(0, 1)) -> StudyPlan:
    return StudyPlan("exps/x.py", "x", parse_variants("none,cam", ATTENTIONS), list(seeds), "none", 8, False, [])


def test_runs_go_seed_by_seed_and_shards_split_them(tmp_path: Path):
    runs = _plan().runs(tmp_path)
    assert [run.label for run in runs] == ["none/seed0", "cam/seed0", "none/seed1", "cam/seed1"]
    assert runs[1].run_dir == tmp_path / "cam" / "seed0"
    assert [run.label for run in shard_runs(runs, (1, 2))] == ["cam/seed0", "cam/seed1"]


def test_lockstep_shards_are_equal_slices_in_seed_order():
    plan = StudyPlan("exps/x.py", "x", parse_variants("none,cam,se", ATTENTIONS), [0, 1, 2], "none", 8, False, [])
    runs = plan.runs(Path("study"))
    shards = [[run.label for run in shard_runs(runs, (index, 2), contiguous=True)] for index in range(2)]
    assert shards == [["none/seed0", "cam/seed0", "se/seed0", "none/seed1"],
                      ["cam/seed1", "se/seed1", "none/seed2", "cam/seed2", "se/seed2"]]
    four = [shard_runs(runs, (index, 4), contiguous=True) for index in range(4)]
    assert sorted(run.index for shard in four for run in shard) == list(range(9))  # each run in one shard
    assert [len(shard) for shard in four] == [2, 2, 2, 3]


def test_a_folder_made_with_other_settings_is_refused_unless_forced(tmp_path: Path):
    claim_study_dir(tmp_path, _plan(), force=False)
    claim_study_dir(tmp_path, _plan(), force=False)  # the same plan again (another shard): fine
    with pytest.raises(UserError, match="seeds: folder has"):
        claim_study_dir(tmp_path, _plan(seeds=(0, 1, 2)), force=False)
    claim_study_dir(tmp_path, _plan(seeds=(0, 1, 2)), force=True)


def test_variant_names_follow_the_attention_spelling_rule():
    variants = parse_variants("None, CAM ,Se", ATTENTIONS)
    assert [variant.name for variant in variants] == ["none", "cam", "se"]
    assert variants[1].override_args() == ["attention", "cam"]


def test_build_plan_checks_the_estimand_correction_and_margin():
    from yolox.study.plan import build_plan

    shapes = str(Path(__file__).resolve().parents[2] / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
    plan, folder = build_plan(shapes, None, "none,CAM,quarter", "0,1", margin_points=0.3, select="best")
    assert [variant.name for variant in plan.variants] == ["none", "cam", "quarter"]  # quarter: the exp file's block
    assert plan.margin == pytest.approx(0.003) and plan.select == "best" and plan.correction == "holm"
    assert folder.name == "yolox_nano_cam_shapes_study"
    with pytest.raises(UserError, match="--select"):
        build_plan(shapes, None, "none,cam", "0", select="final")
    with pytest.raises(UserError, match="--margin"):
        build_plan(shapes, None, "none,cam", "0", margin_points=-1)
