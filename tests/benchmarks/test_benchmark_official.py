"""The side-by-side train-step benchmark: its worker protocol, its losses, and the checks on --official-python."""

import json
import subprocess
import sys

import pytest
import torch

from yolox.benchmarks.model import synthetic_images, synthetic_targets
from yolox.benchmarks.official import WORKER, _environ, measure_against_official
from yolox.cli.benchmark import main as benchmark_main
from yolox.exp import get_exp
from yolox.utils.errors import UserError

SIZE = (64, 64)


@pytest.mark.slow
def test_the_worker_times_every_phase_and_its_loss_is_the_models_own(tmp_path):
    batch_file, weights_file = tmp_path / "batch.pt", tmp_path / "weights.pt"
    images, targets = synthetic_images(2, SIZE), synthetic_targets(2, SIZE, 80, (1, 3))
    torch.save({"images": images, "targets": targets}, batch_file)
    argv = [sys.executable, str(WORKER), "--exp-name", "yolox-nano", "--batch", str(batch_file),
            "--weights", str(weights_file), "--threads", "1", "--save-weights"]
    answer = subprocess.run(argv, input=json.dumps({"steps": 2}) + "\n", capture_output=True, text=True,
                            env=_environ(True, 1), timeout=300, check=True)
    hello, timed = (json.loads(line) for line in answer.stdout.splitlines())
    assert hello["ready"] and hello["threads"] == 1
    for phase in ("forward", "backward", "optimizer", "step"):
        assert len(timed["phases"][phase]) == 2 and all(seconds > 0 for seconds in timed["phases"][phase])
    for forward, backward, optimizer, step in zip(*(timed["phases"][p] for p in ("forward", "backward",
                                                                                   "optimizer", "step"))):
        assert forward + backward + optimizer == pytest.approx(step, rel=1e-9)  # the step is the three phases
    # The first loss, computed here from the weights the worker wrote, in this process.
    model = get_exp(None, "yolox-nano").get_model()
    model.load_state_dict(torch.load(weights_file, weights_only=True))
    model.train()
    assert float(model(images, targets)["total_loss"]) == pytest.approx(timed["losses"][0], rel=1e-5)
    assert timed["losses"][0] != timed["losses"][1]  # the optimizer stepped in between


@pytest.mark.slow
def test_an_interpreter_that_imports_this_project_is_refused(tmp_path):
    with pytest.raises(UserError, match="imports this project's yolox"):
        measure_against_official(sys.executable, "yolox-nano", SIZE, 1, 80, threads=1, turns=1, steps_per_turn=1,
                                 warmup=0, scratch=tmp_path)


def test_a_missing_interpreter_names_the_flag_and_the_make_target(tmp_path):
    with pytest.raises(UserError, match=r"--official-python .*nowhere.*make official-venv"):
        measure_against_official(str(tmp_path / "nowhere" / "python"), "yolox-nano", SIZE, 1, 80, threads=1,
                                 turns=1, steps_per_turn=1, warmup=0, scratch=tmp_path)


def test_an_exp_file_is_refused_in_one_line(capsys, tmp_path):
    code = benchmark_main(["train-step-vs-official", "-f", "exps/yolox_s_cam.py", "--json", str(tmp_path / "b.json")])
    assert code == 2
    assert "give -n" in capsys.readouterr().err
