"""tools/study.py refuses bad input before any training; the report command on a folder that is not a study."""

import json
from pathlib import Path

import pytest

from yolox.cli.study import main as study_main
from yolox.study.plan import build_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


def _study(tmp_path: Path, *extra: str) -> list[str]:
    return ["-f", SHAPES_EXP, "--study-dir", str(tmp_path / "study"), "--device", "cpu", *extra]


def test_unknown_variant_fails_before_training_with_the_closest_name(tmp_path, capsys):
    assert study_main(_study(tmp_path, "--variants", "none,cbma")) == 2
    assert "did you mean 'cbam'" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_unknown_override_key_in_a_variant_names_the_closest_key(tmp_path, capsys):
    assert study_main(_study(tmp_path, "--variants", "none,late=attention:se,attention_levls:dark5")) == 2
    err = capsys.readouterr().err
    assert "variant 'late'" in err and "attention_levels" in err


def test_baseline_must_be_a_variant(tmp_path, capsys):
    assert study_main(_study(tmp_path, "--variants", "cam,se", "--baseline", "none")) == 2
    assert "--baseline 'none'" in capsys.readouterr().err


def test_folder_of_another_study_is_refused(tmp_path, capsys):
    other_plan, study_dir = build_plan(SHAPES_EXP, None, "none,se", "0", study_dir=str(tmp_path / "study"))
    study_dir.mkdir(parents=True)
    (study_dir / "study_plan.json").write_text(json.dumps(other_plan.to_dict()))
    assert study_main(_study(tmp_path, "--variants", "none,cam")) == 2
    err = capsys.readouterr().err
    assert "made with other settings" in err and "--force" in err


def test_report_of_a_folder_that_is_not_a_study(tmp_path, capsys):
    assert study_main(["report", str(tmp_path)]) == 2
    assert "not a study folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["-expn", "--shard"])
def test_flags_with_bad_values(tmp_path, capsys, flag):
    value = "x" if flag == "-expn" else "2/2"
    assert study_main(_study(tmp_path, "--variants", "none,cam", flag, value)) == 2
    assert capsys.readouterr().err.startswith("error: ")
