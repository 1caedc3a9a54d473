"""tools/eval.py without -c: a run without best_ckpt.pth is told which checkpoints it has."""

from pathlib import Path

import torch

from yolox.cli.eval import main
from yolox.data.shapes import generate_shapes_dataset

EXP = '''
from yolox.exp import Exp as BaseExp


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 5
        self.depth = 0.33
        self.width = 0.125
        self.data_dir = {data_dir!r}
        self.val_ann = "instances_val.json"
        self.val_name = "val"
        self.test_size = (64, 64)
        self.data_num_workers = 0
        self.output_dir = {output_dir!r}
        self.exp_name = "no_best"
'''


def test_eval_without_best_names_the_existing_checkpoints(tmp_path: Path, capsys) -> None:
    data_dir = generate_shapes_dataset(tmp_path / "data", num_train=2, num_val=2, img_size=64, seed=0)
    exp_file = tmp_path / "no_best_exp.py"
    exp_file.write_text(EXP.format(data_dir=str(data_dir), output_dir=str(tmp_path / "out")))
    run_dir = tmp_path / "out" / "no_best"
    run_dir.mkdir(parents=True)
    torch.save({"model": {}}, run_dir / "latest_ckpt.pth")
    torch.save({"model": {}}, run_dir / "last_epoch_ckpt.pth")
    assert main(["-f", str(exp_file), "-b", "2", "--device", "cpu"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    err = errors[0]
    assert err.startswith(f"error: {run_dir / 'best_ckpt.pth'} does not exist (it is written at a run's first "
                          "evaluation)")
    assert f"holds latest_ckpt.pth, last_epoch_ckpt.pth: pass one with -c, e.g. -c {run_dir / 'latest_ckpt.pth'}" in err
