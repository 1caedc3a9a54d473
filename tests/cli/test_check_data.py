"""tools/check_data.py: every image decoded, every problem of both splits listed in one report."""

import json
import subprocess
import sys
from pathlib import Path

from yolox.cli.check_data import main
from yolox.data.shapes import generate_shapes_dataset

EXP = '''
from yolox.exp import Exp as BaseExp


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 5
        self.data_dir = {data_dir!r}
        self.train_ann = "instances_train.json"
        self.val_ann = "instances_val.json"
        self.train_name = "train"
        self.val_name = "val"
        self.input_size = (64, 64)
        self.test_size = (64, 64)
        self.exp_name = "checked"
'''


def _exp_file(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = Path(generate_shapes_dataset(tmp_path / "data", num_train=6, num_val=3, img_size=64, seed=0))
    exp_file = tmp_path / "checked_exp.py"
    exp_file.write_text(EXP.format(data_dir=str(data_dir)))
    return exp_file, data_dir


def test_clean_data_passes(tmp_path: Path, capsys) -> None:
    exp_file, _ = _exp_file(tmp_path)
    assert main(["-f", str(exp_file), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "train: 6 images decoded, 0 problem(s)" in out and "the data of exp checked is fine" in out


def test_every_problem_of_both_splits_is_listed(tmp_path: Path, capsys) -> None:
    exp_file, data_dir = _exp_file(tmp_path)
    for name in ("000001.jpg", "000004.jpg"):  # valid JPEG signature, garbage afterwards
        path = data_dir / "train" / name
        path.write_bytes(path.read_bytes()[:4] + b"\x00garbage" * 30)
    (data_dir / "val" / "000002.jpg").unlink()
    ann_file = data_dir / "annotations" / "instances_val.json"
    annotations = json.loads(ann_file.read_text())
    annotations["annotations"][0]["image_id"] = 999
    ann_file.write_text(json.dumps(annotations))

    assert main(["-f", str(exp_file)]) == 1
    captured = capsys.readouterr()
    assert "train: 6 images decoded, 1 problem(s)" in captured.out
    assert (f"train: 2 images cannot be decoded:\n    {data_dir / 'train' / '000001.jpg'}\n    "
            f"{data_dir / 'train' / '000004.jpg'}") in captured.out
    assert "val: 3 images decoded, 2 problem(s)" in captured.out
    assert "val: warning: " in captured.out and "annotation id 1 with image_id 999" in captured.out
    assert f"val: 1 images missing:\n    {data_dir / 'val' / '000002.jpg'}" in captured.out
    assert captured.err.startswith("error: the data of exp checked has 3 problem(s)")


def test_tools_forwarder_reports_a_user_error(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "tools" / "check_data.py"
    done = subprocess.run([sys.executable, str(script), "-f", str(tmp_path / "nowhere.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: exp file") and "Traceback" not in done.stderr
