"""tools/train.py refuses impossible values at start: one line with the key, the value and the valid range."""

import pytest

from yolox.cli.train import main


@pytest.mark.parametrize(("key", "value", "valid"), [
    ("basic_lr_per_img", "nan", "a finite number >= 0"), ("basic_lr_per_img", "inf", "a finite number >= 0"),
    ("basic_lr_per_img", "-0.01", "a finite number >= 0"), ("weight_decay", "nan", "a finite number >= 0"),
    ("weight_decay", "-1e-4", "a finite number >= 0"), ("momentum", "nan", "from 0 up to (not including) 1"),
    ("momentum", "-0.9", "from 0 up to (not including) 1"), ("mosaic_prob", "7", "a probability from 0 to 1"),
    ("seed", "-1", "a whole number >= 0 or None"), ("data_num_workers", "-2", "a whole number >= 0"),
])
def test_an_impossible_value_is_refused_before_training(tmp_path, monkeypatch, capsys, key: str, value: str,
                                                        valid: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-n", "yolox-nano", "-b", "4", "--device", "cpu", key, value]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: exp key {key}=") and valid in error and "\n" not in error
    assert not (tmp_path / "YOLOX_outputs").exists()  # nothing started
