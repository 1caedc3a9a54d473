"""The fine-tune design: every run starts from the same checkpoint; a changed checkpoint is refused; the init run."""

import json
from pathlib import Path

import pytest
import torch

from yolox.cli.study import main as study_main
from yolox.cli.train import build_exp, make_parser
from yolox.study.design import adopt_recorded_checkpoint, build_design, file_sha256
from yolox.study.plan import StudyPlan, claim_study_dir, parse_variants
from yolox.study.runner import train_argv
from yolox.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
HALVING_EXP = str(Path(__file__).resolve().parent / "halving_exp.py")


def _saved_detector(path: Path, overrides: list[str]) -> dict[str, torch.Tensor]:
    """An attention-free detector of seed 123 with perturbed weights, saved as a checkpoint; its state dict."""
    args = make_parser().parse_args(["-f", SHAPES_EXP, *overrides, "attention", "None", "seed", "123"])
    torch.manual_seed(123)
    model = build_exp(args).get_model()
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.randn_like(value) * 0.01)  # not what any seed builds
    state = {key: value.clone() for key, value in model.state_dict().items()}
    torch.save({"model": state}, path)
    return state


def _model_at_step_zero(plan: StudyPlan, run) -> torch.nn.Module:
    args = make_parser().parse_args(train_argv(plan, run, device="cpu", devices=None, resume=False))
    trainer = build_exp(args).get_trainer(args)
    trainer.before_train()
    trainer.attention_probe.close()
    return trainer.model


def test_init_from_checkpoint_gives_every_run_its_weights_and_identity_attention(tmp_path: Path, tiny_overrides):
    ckpt = tmp_path / "detector.pth"
    saved = _saved_detector(ckpt, tiny_overrides)
    design = build_design(str(ckpt))
    assert design.init_sha256 == file_sha256(ckpt) and design.kind == "checkpoint"
    variants = parse_variants("none,cam,se", ["cam", "se"])
    plan = StudyPlan(SHAPES_EXP, "shapes", variants, [0, 1], "none", 4, False, tiny_overrides, design=design)
    reference = None
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255.0
    for run in plan.runs(tmp_path / "study"):
        model = _model_at_step_zero(plan, run)
        state = model.state_dict()
        for key, value in saved.items():
            assert torch.equal(state[key], value), f"{run.label}: {key} is not the checkpoint's at step 0"
        new = [key for key in state if key not in saved]
        assert all(".attn." in key for key in new), run.label
        if run.variant.name != "none":
            assert new and all(float(state[key]) == 0.0 for key in new if key.endswith(".scale")), run.label
        model.eval()
        with torch.no_grad():
            outputs = model(image)
        if reference is None:
            reference = outputs
        else:  # identity attention: the attention model computes exactly the checkpoint's detector
            assert torch.equal(outputs, reference), run.label


def test_a_changed_init_checkpoint_is_refused(tmp_path: Path):
    ckpt = tmp_path / "detector.pth"
    torch.save({"model": {"w": torch.zeros(3)}}, ckpt)
    design = build_design(str(ckpt))
    plan = StudyPlan(SHAPES_EXP, "shapes", parse_variants("none,cam", ["cam"]), [0], "none", 4, False, [], design=design)
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    claim_study_dir(study_dir, plan, force=False)
    assert adopt_recorded_checkpoint(build_design(str(ckpt)), study_dir) == design
    torch.save({"model": {"w": torch.ones(3)}}, ckpt)
    with pytest.raises(UserError, match="changed since this study started"):
        adopt_recorded_checkpoint(build_design(str(ckpt)), study_dir)


def test_design_flags_are_checked():
    with pytest.raises(UserError, match="belong to the fine-tune design"):
        build_design(None, finetune=["max_epoch", "3"])
    with pytest.raises(UserError, match="odd count"):
        build_design("baseline", finetune=["max_epoch"])
    with pytest.raises(UserError, match="no such checkpoint"):
        build_design("missing.pth")
    assert build_design("baseline", 2, ["max_epoch 5"], ["max_epoch", "2"]).init_overrides == ("max_epoch", "5")


@pytest.mark.slow
def test_init_from_baseline_then_halving_stops_the_hurting_variant(tmp_path: Path, tiny_overrides):
    study_dir = tmp_path / "study"
    argv = ["-f", HALVING_EXP, "--variants", "none,cam,hurt=attention:hurt,attention_init:paper", "--seeds", "0,1",
            "--init-from", "baseline", "--init-overrides", "max_epoch", "2", "--finetune", "max_epoch", "2",
            "--halving", "0.5", "--margin", "1", "--bootstrap", "0", "-b", "4", "--device", "cpu",
            "--study-dir", str(study_dir), *tiny_overrides]
    assert study_main(argv) == 0
    init_dir = study_dir / "_init" / "seed0"
    assert json.loads((init_dir / "sessions.json").read_text()).__len__() == 1
    init_evals = [json.loads(line) for line in (init_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(record["epoch"] for record in init_evals if record["kind"] == "eval") == 2
    plan = json.loads((study_dir / "study_plan.json").read_text())
    checkpoint = init_dir / "last_epoch_ckpt.pth"
    assert plan["design"]["init_sha256"] == file_sha256(checkpoint)
    assert plan["halving"] == {"fractions": [0.5], "epochs": [1], "total_epochs": 2}
    for arm in ("none/seed0", "cam/seed1", "hurt/seed0"):
        log = (study_dir / arm / "train_log.txt").read_text()
        assert f"loading weights from {checkpoint} for fine-tuning" in log, arm
    assert "new 0" in (study_dir / "none/seed0/train_log.txt").read_text()
    decisions = json.loads((study_dir / "halving.json").read_text())
    assert decisions[0]["epoch"] == 1 and decisions[0]["stopped"] == ["hurt"]
    for seed in (0, 1):
        assert (study_dir / "cam" / f"seed{seed}" / "run.json").is_file()
        hurt = study_dir / "hurt" / f"seed{seed}"
        assert not (hurt / "run.json").exists() and (hurt / "latest_ckpt.pth").is_file()
    markdown = (study_dir / "study.md").read_text()
    assert "`hurt`: *stopped at rung 1 (budget 50%, epoch 1 of 2): hurts by more than the margin" in markdown
    assert "Compute saved: 2 stopped runs" in markdown and "Paired learning curves" in markdown
    assert "the baseline trained once, then every run" in markdown and plan["design"]["init_sha256"] in markdown
    init_ap = json.loads((init_dir / "run.json").read_text())["ap50_95"]
    assert f"The shared start (the init run's last checkpoint) scores AP50:95 {100 * init_ap:.2f}%" in markdown
    # The same command again trains nothing; --no-halving continues the stopped runs to the end.
    assert study_main(argv) == 0
    assert len(json.loads((init_dir / "sessions.json").read_text())) == 1
    assert study_main(["--no-halving", *argv]) == 0
    assert json.loads((study_dir / "hurt" / "seed1" / "run.json").read_text())["status"] == "done"


def test_the_executor_refuses_the_designs_that_need_a_step_between_runs(tmp_path: Path, capsys):
    pytest.importorskip("submitit")
    argv = ["-f", SHAPES_EXP, "--variants", "none,cam", "--executor", "local", "--study-dir", str(tmp_path / "s"),
            "--halving", "0.5"]
    assert study_main(argv) == 2
    assert "--halving (rungs decided between runs) need the study command without --executor" in capsys.readouterr().err
