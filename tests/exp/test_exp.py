"""The exp system: default exps by name and file, strict overrides, validation, optimizer groups."""

from pathlib import Path

import pytest
import torch

from yolox.exp import DEFAULT_EXPS, get_exp
from yolox.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(DEFAULT_EXPS))
def test_default_exps_by_name_and_file_agree(name: str) -> None:
    by_name = get_exp(exp_name=name)
    by_file = get_exp(exp_file=str(REPO_ROOT / "exps" / "default" / f"{DEFAULT_EXPS[name]}.py"))
    assert by_name.public_settings() == by_file.public_settings()
    assert by_name.exp_name == DEFAULT_EXPS[name]


def test_official_defaults_and_model_sizes() -> None:
    nano = get_exp(exp_name="yolox-nano")
    assert (nano.depth, nano.width, nano.depthwise, nano.input_size, nano.random_size) == (0.33, 0.25, True, (416, 416), (10, 20))
    assert (nano.mosaic_prob, nano.enable_mixup, nano.mosaic_scale) == (0.5, False, (0.5, 1.5))
    small = get_exp(exp_name="yolox-s")
    assert (small.depth, small.width, small.attention) == (0.33, 0.50, None)
    assert (small.basic_lr_per_img, small.max_epoch, small.no_aug_epochs, small.warmup_epochs) == (0.01 / 64, 300, 15, 5)
    assert (small.test_conf, small.nmsthre, small.weight_decay, small.momentum) == (0.01, 0.65, 5e-4, 0.9)


@pytest.mark.parametrize("attention", ["cam", "se", "eca", "cbam"])
def test_attention_exp_files_pick_the_block(attention: str) -> None:
    exp = get_exp(exp_file=str(REPO_ROOT / "exps" / f"yolox_s_{attention}.py"))
    assert exp.attention == attention
    assert (exp.depth, exp.width) == (0.33, 0.50)
    assert exp.attention_levels is None and exp.resolved_attention_levels() == ("dark3", "dark4", "dark5")
    assert exp.exp_name == f"yolox_s_{attention}"


def test_merge_parses_types() -> None:
    exp = get_exp(exp_name="yolox-s")
    exp.merge(["input_size", "320,416", "ema", "False", "save_history_ckpt", "0", "max_epoch", "27",
               "basic_lr_per_img", "0.001", "attention", "eca", "attention_levels", "dark4,dark5",
               "attention_kwargs", "{'k_size': 5}", "data_dir", "/tmp/data", "seed", "3"])
    assert exp.input_size == (320, 416)
    assert exp.ema is False and exp.save_history_ckpt is False
    assert exp.max_epoch == 27 and exp.basic_lr_per_img == 0.001
    assert exp.attention == "eca" and exp.attention_levels == ("dark4", "dark5")
    assert exp.attention_kwargs == {"k_size": 5}
    assert exp.data_dir == "/tmp/data" and exp.seed == 3
    exp.merge(["attention", "None"])
    assert exp.attention is None


def test_nested_tuple_overrides_use_the_literal_parser() -> None:
    exp = get_exp(exp_name="yolox-s")
    exp.merge(["voc_train_sets", "(('2007','trainval'),)", "voc_test_sets", "[['2012', 'val'], ['2007', 'test']]"])
    assert exp.voc_train_sets == (("2007", "trainval"),)
    assert exp.voc_test_sets == (("2012", "val"), ("2007", "test"))
    with pytest.raises(UserError, match=r"voc_train_sets='2007,trainval': expected a tuple of tuples .*\(\('2007'"):
        exp.merge(["voc_train_sets", "2007,trainval"])


def test_random_size_none_on_the_command_line_fixes_the_size_and_clipping_warns() -> None:
    from loguru import logger

    exp = get_exp(exp_name="yolox-s")
    exp.merge(["input_size", "128,128", "test_size", "128,128"])
    assert exp.random_size is None and exp.multiscale_bounds() == (-1, 9)  # the official meaning in an exp file
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        sizes = {exp.random_resize(None, 0, 0, False) for _ in range(40)}
        sizes |= {exp.random_resize(None, 0, 0, False) for _ in range(40)}
    finally:
        logger.remove(sink)
    assert min(sizes) == (32, 32) and max(sizes) == (288, 288)
    assert len(messages) == 1 and "from -32 to 288 px" in messages[0] and "random_size None" in messages[0]
    exp.merge(["random_size", "None"])
    assert exp.multiscale_range == 0 and {exp.random_resize(None, 0, 0, False) for _ in range(20)} == {(128, 128)}


@pytest.mark.parametrize("opts, message", [
    (["inpt_size", "640,640"], "did you mean 'input_size'"),
    (["ema", "maybe"], "expected a boolean"),
    (["max_epoch", "ten"], "expected a value of type int"),
    (["input_size", "650,640"], "multiples of 32"),
    (["num_classes", "0"], "num_classes"),
    (["attention", "transformer"], "cam"),
    (["attention_levels", "dark2"], "dark3, dark4, dark5"),
    (["attention_init", "zeros"], "identity"),
    (["max_epoch"], "pairs"),
])
def test_merge_rejects_bad_overrides(opts: list, message: str) -> None:
    exp = get_exp(exp_name="yolox-s")
    with pytest.raises(UserError, match=message):
        exp.merge(opts)


def test_exp_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken_exp.py"
    broken.write_text("from yolox.exp import Exp as Base\n\nclass Exp(Base):\n    def __init__(self)\n        pass\n")
    with pytest.raises(UserError, match=r"broken_exp.py has a syntax error at line 4"):
        get_exp(exp_file=str(broken))
    with pytest.raises(UserError, match="does not exist"):
        get_exp(exp_file=str(tmp_path / "missing.py"))
    with pytest.raises(UserError, match="yolox-s"):
        get_exp(exp_name="yolox-q")
    no_class = tmp_path / "no_class.py"
    no_class.write_text("VALUE = 1\n")
    with pytest.raises(UserError, match="no class named Exp"):
        get_exp(exp_file=str(no_class))


def test_subclassed_exp_file_takes_its_stem_as_name(tmp_path: Path) -> None:
    child = tmp_path / "my_eca_run.py"
    child.write_text("from yolox.exp.default.yolox_s import Exp as Base\n\n"
                     "class Exp(Base):\n    def __init__(self):\n        super().__init__()\n"
                     "        self.attention = 'eca'\n        self.num_classes = 3\n")
    exp = get_exp(exp_file=str(child))
    assert exp.exp_name == "my_eca_run" and exp.attention == "eca" and exp.num_classes == 3


@pytest.mark.parametrize("attention", [None, "cam", "cbam"])
def test_optimizer_groups_cover_every_parameter_once(attention: str) -> None:
    exp = get_exp(exp_name="yolox-nano")
    exp.merge(["attention", str(attention), "attention_init", "identity" if attention == "cbam" else "paper"])
    model = exp.get_model()
    optimizer = exp.get_optimizer(batch_size=8)
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(set(grouped)) == len(trainable)
    assert set(grouped) == set(trainable)
    no_decay, decay, biases = optimizer.param_groups
    assert decay["weight_decay"] == exp.weight_decay and no_decay["weight_decay"] == 0 and biases["weight_decay"] == 0
    assert all(p.ndim > 1 for p in decay["params"])
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]


def test_get_model_applies_yolox_batchnorm_settings_and_meta() -> None:
    exp = get_exp(exp_name="yolox-nano")
    exp.merge(["attention", "se", "num_classes", "3", "class_names", "a,b,c"])
    model = exp.get_model()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.03 for m in norms)
    assert model.training
    meta = exp.meta()
    assert meta["num_classes"] == 3 and meta["class_names"] == ["a", "b", "c"] and meta["attention"] == "se"
    other = get_exp(exp_name="yolox-nano")
    with pytest.raises(UserError, match="num_classes"):
        other.check_meta(meta, "run/best_ckpt.pth")


@pytest.mark.parametrize("opts, message", [
    (["max_epoch", "0"], r"exp key max_epoch=0: must be a whole number >= 1"),
    (["max_epoch", "-3"], r"exp key max_epoch=-3: must be a whole number >= 1"),
    (["no_aug_epochs", "-1"], r"exp key no_aug_epochs=-1: must be a number >= 0"),
    (["max_epoch", "3", "warmup_epochs", "2", "no_aug_epochs", "2"],
     r"warmup_epochs=2 \+ no_aug_epochs=2 exceed max_epoch=3: the schedule cannot run; use max_epoch 4, or keep "
     r"max_epoch 3 with warmup_epochs 1 and no_aug_epochs 2"),
])
def test_merge_rejects_schedules_that_cannot_run(opts: list, message: str) -> None:
    with pytest.raises(UserError, match=message):
        get_exp(exp_name="yolox-s").merge(opts)


def test_warmup_and_no_aug_epochs_may_fill_the_whole_run() -> None:
    exp = get_exp(exp_name="yolox-s")
    exp.merge(["max_epoch", "2", "warmup_epochs", "1", "no_aug_epochs", "1"])
    scheduler = exp.get_lr_scheduler(0.01, 4)
    assert scheduler.update_lr(4) == pytest.approx(0.01) and scheduler.update_lr(8) == pytest.approx(0.0005)


def test_an_exception_in_the_exp_constructor_names_the_file_and_line(tmp_path: Path) -> None:
    exp_file = tmp_path / "raising_exp.py"
    exp_file.write_text("from yolox.exp import Exp as Base\n\n\nclass Exp(Base):\n    def __init__(self):\n"
                        "        super().__init__()\n        self.depth = 1 / 0\n")
    with pytest.raises(UserError, match=r"raising_exp.py: Exp\(\) failed at line 7: ZeroDivisionError: division by zero"):
        get_exp(exp_file=str(exp_file))


def test_multiscale_size_of_a_seeded_run_comes_from_the_seed_and_the_iteration() -> None:
    import random

    exp = get_exp(exp_name="yolox-s")
    exp.seed = 3
    sizes = []
    for global_seed in (0, 1):
        random.seed(global_seed)  # the process-global stream does not matter
        sizes.append([exp.random_resize(None, 0, 0, False, iteration=step) for step in range(10, 200, 10)])
    assert sizes[0] == sizes[1] and len(set(sizes[0])) > 1
    low, high = exp.multiscale_bounds()
    assert all(low * 32 <= side <= high * 32 and side % 32 == 0 for side, _ in sizes[0])
    exp.seed = 4
    assert [exp.random_resize(None, 0, 0, False, iteration=step) for step in range(10, 200, 10)] != sizes[0]


@pytest.mark.parametrize(("key", "value", "valid"), [
    ("basic_lr_per_img", "nan", "finite number >= 0"), ("basic_lr_per_img", "inf", "finite number >= 0"),
    ("basic_lr_per_img", "-0.001", "finite number >= 0"), ("weight_decay", "nan", "finite number >= 0"),
    ("momentum", "nan", "from 0 up to (not including) 1"), ("momentum", "1.0", "from 0 up to (not including) 1"),
    ("warmup_lr", "-1", "finite number >= 0"), ("min_lr_ratio", "inf", "finite number >= 0"),
    ("mosaic_prob", "7", "probability from 0 to 1"), ("mixup_prob", "-0.5", "probability from 0 to 1"),
    ("hsv_prob", "1.5", "probability from 0 to 1"), ("flip_prob", "nan", "probability from 0 to 1"),
    ("seed", "-1", "whole number >= 0 or None"), ("data_num_workers", "-2", "whole number >= 0"),
])
def test_impossible_training_values_are_refused_with_key_value_and_range(key: str, value: str, valid: str) -> None:
    exp = get_exp(exp_name="yolox-s")
    with pytest.raises(UserError) as error:
        exp.merge([key, value])
    message = str(error.value)
    assert message.startswith(f"exp key {key}=") and valid in message and "\n" not in message
    assert str(float(value)) in message or value in message


def test_boundary_training_values_are_accepted() -> None:
    exp = get_exp(exp_name="yolox-s")
    exp.merge(["mosaic_prob", "0.0", "mixup_prob", "1.0", "momentum", "0.0", "seed", "0", "data_num_workers", "0",
               "basic_lr_per_img", "0.0", "seed", "None"])
    assert exp.seed is None and exp.mosaic_prob == 0.0


def test_get_exp_applies_overrides_and_the_experiment_name() -> None:
    """The one builder behind the commands and the study: overrides are merged, -expn renames the run folder."""
    exp = get_exp(None, "yolox-nano", ["max_epoch", "30", "output_dir", "runs"], experiment_name="trial")
    assert (exp.max_epoch, exp.exp_name, exp.run_dir) == (30, "trial", Path("runs") / "trial")
    assert get_exp(None, "yolox-nano").run_dir == Path("./YOLOX_outputs") / "yolox_nano"
    with pytest.raises(UserError, match="max_epok"):
        get_exp(None, "yolox-nano", ["max_epok", "7"])
    with pytest.raises(UserError, match="print_interval"):
        get_exp(None, "yolox-nano", ["print_interval", "0"])
