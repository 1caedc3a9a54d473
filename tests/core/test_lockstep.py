"""Lockstep groups: members fed by one data stream train exactly as runs of their own, resume exactly, fail alone."""

import argparse
import json
from pathlib import Path

import pytest
import torch

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer
from yolox.core.lockstep import group_does_not_fit
from yolox.utils.errors import UserError

VARIANTS = {
    "none": [],
    "cam": ["attention", "cam"],
    "soca_neck": ["attention", "soca", "attention_position", "neck"],
}


class SimulatedKill(BaseException):
    """Stands for the process being killed: nothing in the trainer catches it."""


def _exps(exp_file: Path, out: Path, names: list[str], *flags: str) -> tuple[list, argparse.Namespace]:
    """One exp per variant, each training into ``out/<variant>/seed0``, and the parsed train flags."""
    args = make_parser().parse_args(["-f", str(exp_file), "-b", "2", "--device", "cpu", "-expn", "seed0", *flags])
    exps = [build_exp(argparse.Namespace(**{**vars(args), "opts": [*VARIANTS[name], "output_dir", str(out / name)]}))
            for name in names]
    return exps, args


def _recording(stop_after: int | None = None, poison: tuple[int, int] | None = None) -> type:
    """A Trainer that records each member's total loss per iteration; it may stop (a kill) after ``stop_after``
    iterations, and make member ``poison[0]``'s loss NaN from iteration ``poison[1]`` on."""

    class RecordingTrainer(Trainer):
        losses: dict[str, dict[int, float]]

        def train_one_iter(self) -> None:
            if poison is not None and self.completed_iters == poison[1]:
                model = self.members[poison[0]].model
                forward = model.forward

                def nan_forward(*inputs):
                    outputs = forward(*inputs)
                    outputs["total_loss"] = outputs["total_loss"] * float("nan")
                    return outputs

                model.forward = nan_forward
            super().train_one_iter()

        def after_iter(self) -> None:
            for member in self.active_members:
                self.losses.setdefault(member.label, {})[self.completed_iters + 1] = member.meter["total_loss"].latest
            super().after_iter()
            if stop_after is not None and self.completed_iters == stop_after:
                raise SimulatedKill

    RecordingTrainer.losses = {}
    return RecordingTrainer


def _train(cls: type, exps: list, args: argparse.Namespace) -> dict[str, dict[int, float]]:
    trainer = cls(exps[0], args, lockstep_with=exps[1:])
    try:
        trainer.train()
    except SimulatedKill:
        pass
    return cls.losses


def test_two_members_step_bitwise_as_runs_of_their_own(make_exp_file, tmp_path: Path) -> None:
    exp_file = make_exp_file(max_epoch=2)  # 6 iterations of batch 2 per epoch
    grouped = _train(_recording(stop_after=4), *_exps(exp_file, tmp_path / "group", ["none", "cam"]))
    for name in ("none", "cam"):
        alone = _train(_recording(stop_after=4), *_exps(exp_file, tmp_path / name, [name]))
        assert grouped[f"{name}/seed0"] == alone[f"{name}/seed0"]
    assert grouped["none/seed0"] != grouped["cam/seed0"]


@pytest.mark.slow
def test_each_member_trains_bitwise_as_a_run_of_its_own(make_exp_file, tmp_path: Path) -> None:
    exp_file = make_exp_file(max_epoch=4)  # 6 iterations of batch 2 per epoch, evaluated after each
    names = list(VARIANTS)
    grouped = _train(_recording(stop_after=20), *_exps(exp_file, tmp_path / "group", names))
    for name in names:
        alone = _train(_recording(stop_after=20), *_exps(exp_file, tmp_path / "alone", [name]))
        label = f"{name}/seed0"
        assert list(grouped[label]) == list(range(1, 21))
        assert grouped[label] == alone[label], f"{name} trained in the group differs from {name} alone"
    assert len({tuple(losses.values()) for losses in grouped.values()}) == 3  # the variants do differ

    for name in names:
        run_dir = tmp_path / "group" / name / "seed0"
        log = (run_dir / "train_log.txt").read_text()
        assert f"[{name}/seed0]" not in log  # a file holds one member's records, unlabelled
        others = [other for other in names if other != name]
        assert all(f"{other}/seed0/latest_ckpt.pth" not in log for other in others)
        assert f"{name}/seed0/latest_ckpt.pth" in log
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert {record["epoch"] for record in records if record["kind"] == "eval"} == {1, 2, 3}


@pytest.mark.slow
def test_a_killed_group_resumes_every_member_exactly(make_exp_file, tmp_path: Path) -> None:
    exp_file = make_exp_file(max_epoch=3)
    names = ["none", "cam"]
    uninterrupted = _train(_recording(), *_exps(exp_file, tmp_path / "whole", names))
    _train(_recording(stop_after=8), *_exps(exp_file, tmp_path / "killed", names))  # mid epoch 2
    resumed = _train(_recording(), *_exps(exp_file, tmp_path / "killed", names, "--resume"))
    for name in names:
        label = f"{name}/seed0"
        assert list(resumed[label]) == list(range(7, 19))  # from the checkpoint of epoch 1 to the end
        assert resumed[label] == {i: uninterrupted[label][i] for i in range(7, 19)}
        assert (tmp_path / "killed" / name / "seed0" / "last_epoch_ckpt.pth").is_file()


@pytest.mark.slow
def test_a_diverging_member_stops_alone(make_exp_file, tmp_path: Path) -> None:
    exp_file = make_exp_file(max_epoch=2)
    names = ["none", "cam", "soca_neck"]
    uninterrupted = _train(_recording(), *_exps(exp_file, tmp_path / "whole", names))
    cls = _recording(poison=(1, 4))
    exps, args = _exps(exp_file, tmp_path / "poisoned", names)
    trainer = cls(exps[0], args, lockstep_with=exps[1:])
    trainer.train()
    cam = trainer.members[1]
    assert cam.failure.startswith("non-finite loss at iteration 5 (epoch 1/2, iter 5/6)")
    assert [member.label for member in trainer.active_members] == ["none/seed0", "soca_neck/seed0"]
    for name in ("none", "soca_neck"):
        label = f"{name}/seed0"
        assert cls.losses[label] == uninterrupted[label]
        run_dir = tmp_path / "poisoned" / name / "seed0"
        assert (run_dir / "last_epoch_ckpt.pth").is_file()
        assert "| ERROR" not in (run_dir / "train_log.txt").read_text()
    cam_dir = tmp_path / "poisoned" / "cam" / "seed0"
    assert list(cls.losses["cam/seed0"]) == [1, 2, 3, 4]
    assert not (cam_dir / "last_epoch_ckpt.pth").exists() and not (cam_dir / "latest_ckpt.pth").exists()
    errors = [line for line in (cam_dir / "train_log.txt").read_text().splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and "non-finite loss at iteration 5" in errors[0]


def test_every_member_failing_ends_the_group_without_an_error(make_exp_file, tmp_path: Path) -> None:
    exps, args = _exps(make_exp_file(max_epoch=2), tmp_path, ["none", "cam"])

    class BothPoisoned(_recording(poison=(0, 2))):
        def train_one_iter(self) -> None:
            if self.completed_iters == 2:  # the second member's loss goes infinite at iteration 3 too
                model = self.members[1].model
                forward = model.forward
                model.forward = lambda *inputs: {**forward(*inputs), "total_loss": torch.tensor(float("inf"))}
            super().train_one_iter()

    trainer = BothPoisoned(exps[0], args, lockstep_with=exps[1:])
    trainer.train()
    assert trainer.active_members == []
    assert all(member.failure.startswith("non-finite loss at iteration 3") for member in trainer.members)
    assert not any((member.run_dir / "last_epoch_ckpt.pth").exists() for member in trainer.members)


def test_members_must_agree_on_the_shared_stream(make_exp_file, tmp_path: Path) -> None:
    exps, args = _exps(make_exp_file(), tmp_path, ["none", "cam"])
    exps[1].mosaic_prob = 0.5
    with pytest.raises(UserError, match="lockstep member cam/seed0 has mosaic_prob 0.5, member none/seed0 1.0"):
        Trainer(exps[0], args, lockstep_with=exps[1:])
    exps[1].mosaic_prob, exps[1].output_dir = exps[0].mosaic_prob, exps[0].output_dir
    with pytest.raises(UserError, match="give each its own"):
        Trainer(exps[0], args, lockstep_with=exps[1:])


def test_a_group_that_does_not_fit_names_its_members_figures_and_a_size() -> None:
    labels = ["none/seed0", "cam/seed0", "se/seed0"]
    message = str(group_does_not_fit(labels, 2, [812.0, 845.0, 0.0], torch.device("cpu")))
    assert "the lockstep group of 3 members does not fit on cpu" in message
    assert "out of memory in the step of se/seed0" in message
    assert "none/seed0 812 MiB, cam/seed0 845 MiB, se/seed0 not measured yet" in message
    assert message.endswith("--lockstep-size 2 (or a smaller batch)")
    assert "--lockstep-size 1 " in str(group_does_not_fit(labels, 0, [0.0] * 3, torch.device("cpu")))


def test_an_exp_with_its_own_trainer_is_refused_in_lockstep(tmp_path: Path, capsys) -> None:
    from yolox.cli.train import main

    exp_file = tmp_path / "own_trainer.py"
    exp_file.write_text("from yolox.exp import Exp as Base\n\n\nclass Exp(Base):\n"
                        "    def get_trainer(self, args):\n        return super().get_trainer(args)\n")
    code = main(["-f", str(exp_file), "-b", "2", "--device", "cpu", "output_dir", str(tmp_path / "out")],
                lockstep=[["attention", "cam", "output_dir", str(tmp_path / "cam")]])
    assert code == 2
    assert "has its own get_trainer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
