"""The command convention: the ``yolox`` command, ``python -m`` forms, official flags, defaults in ``--help``,
one runner with the command's own exit code, and one line for every bad flag value or unwritable output."""

import argparse
import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from yolox.cli.common import check_output_file, check_output_folder
from yolox.cli.main import COMMANDS
from yolox.cli.main import main as yolox_main
from yolox.utils.errors import CommandFailed, UserError, run_command

REPO_ROOT = Path(__file__).resolve().parents[2]
# The commands the README and the issue name, in the official YOLOX's spelling where it has one.
EXPECTED_COMMANDS = {"train", "eval", "demo", "export-onnx", "export-torchscript", "study", "benchmark", "check-data",
                     "visualize-attention", "make-dataset", "convert-dataset", "quickstart"}
OFFICIAL_TOOLS = ("train", "eval", "demo", "export_onnx", "export_torchscript")


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser (the benchmark's and the study's sub-forms included), by a readable name."""
    parsers = {}
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(f"yolox.cli.{module_name}")
        build = getattr(module, "make_parser", None) or module.build_parser
        parsers[name] = build()
    study = importlib.import_module("yolox.cli.study")
    for form in ("report", "plan", "benchmark"):
        parsers[f"study {form}"] = getattr(study, f"make_{form}_parser")()
    benchmark = parsers["benchmark"]
    subparsers = next(action for action in benchmark._actions if isinstance(action, argparse._SubParsersAction))
    parsers.update({f"benchmark {name}": sub for name, sub in subparsers.choices.items()})
    return parsers


def test_the_yolox_command_lists_every_command(capsys):
    assert set(COMMANDS) == EXPECTED_COMMANDS
    assert yolox_main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(re.search(rf"^  {name}\s", listed, re.M) for name in EXPECTED_COMMANDS)
    assert yolox_main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_setup_installs_the_yolox_console_script():
    setup_text = (REPO_ROOT / "setup.py").read_text()
    assert '"yolox = yolox.cli.main:main"' in setup_text
    assert "console_scripts" in setup_text


def test_the_command_and_module_spellings_reach_the_same_main(monkeypatch):
    import yolox.cli.check_data as check_data

    seen = []
    monkeypatch.setattr(check_data, "main", lambda argv: seen.append(argv) or 7)
    assert yolox_main(["check-data", "-n", "yolox-s"]) == 7
    assert yolox_main(["check_data", "--workers", "2"]) == 7
    assert seen == [["-n", "yolox-s"], ["--workers", "2"]]


def test_every_command_module_runs_with_python_m():
    """Each module of yolox/cli and yolox/tools that has a ``main`` calls it under a ``__main__`` guard."""
    modules = sorted((REPO_ROOT / "yolox" / "cli").glob("*.py")) + sorted((REPO_ROOT / "yolox" / "tools").glob("*.py"))
    checked = 0
    for path in modules:
        tree = ast.parse(path.read_text())
        has_main = any(isinstance(node, (ast.FunctionDef, ast.ImportFrom)) and
                       (getattr(node, "name", None) == "main" or any(alias.name == "main" for alias in getattr(node, "names", [])))
                       for node in tree.body)
        if not has_main:
            continue
        guards = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        assert guards and "main()" in ast.unparse(guards[0]), f"{path} has a main but no __main__ guard calling it"
        checked += 1
    assert checked >= 2 * len(EXPECTED_COMMANDS)


def test_the_official_tool_modules_forward_to_the_commands():
    for name in OFFICIAL_TOOLS:
        assert importlib.import_module(f"yolox.tools.{name}").main is importlib.import_module(f"yolox.cli.{name}").main


@pytest.mark.parametrize("argv", [["-m", "yolox.tools.train", "--help"], ["-m", "yolox.cli.check_data", "--help"],
                                  ["-m", "yolox", "export-onnx", "--help"]])
def test_python_m_prints_the_flags_from_another_folder(tmp_path, argv):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: yolox ")


def test_help_shows_every_default():
    """Every flag with a value default (not None, not a switch) shows it in ``--help``."""
    for name, parser in command_parsers().items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.default in (None, argparse.SUPPRESS) or action.nargs == 0 or not action.option_strings:
                continue
            # Either the formatter's "(default: X)" or the help's own words for it ("default 0: off").
            shown = f"(default: {action.default})" in text or "default" in (action.help or "")
            assert shown, f"{name} {action.option_strings}: its default {action.default!r} is not in --help"


def test_flags_are_never_abbreviated():
    for name, parser in command_parsers().items():
        assert parser.allow_abbrev is False, name
    export = command_parsers()["export-onnx"]
    args = export.parse_args(["--dynamic"])
    assert args.dynamic is True and args.dynamic_hw is False
    with pytest.raises(SystemExit):
        export.parse_args(["--dynamic-h"])


def test_train_accepts_the_official_occupy_flag():
    from yolox.cli.train import make_parser

    assert make_parser().parse_args(["-o"]).occupy is True
    assert make_parser().parse_args(["--occupy", "-d", "1", "-b", "8"]).occupy is True


def test_new_flags_are_kebab_case_with_the_old_spelling_kept():
    from yolox.cli.visualize_attention import make_parser

    for spelling in (["--save-dir", "x", "--strip-height", "20"], ["--save_dir", "x", "--strip_height", "20"]):
        args = make_parser().parse_args(["--path", "p", *spelling])
        assert (args.save_dir, args.strip_height) == ("x", 20)


def test_one_distributed_flag_set_for_train_and_eval():
    from yolox.cli.eval import make_parser as eval_parser
    from yolox.cli.train import make_parser as train_parser

    def process_flags(parser):
        return {option: (action.default, action.choices) for action in parser._actions for option in action.option_strings
                if option in ("-d", "--num_machines", "--machine_rank", "--dist-url", "--dist-backend", "--device")}

    train_flags, eval_flags = process_flags(train_parser()), process_flags(eval_parser())
    assert set(train_flags) == set(eval_flags) == {"-d", "--num_machines", "--machine_rank", "--dist-url",
                                                   "--dist-backend", "--device"}
    assert train_flags["-d"] == (None, None) and eval_flags["-d"] == (1, None)
    assert {k: v for k, v in train_flags.items() if k != "-d"} == {k: v for k, v in eval_flags.items() if k != "-d"}


def test_the_runner_returns_the_command_s_own_code(capsys):
    assert run_command(lambda: None) == 0
    assert run_command(lambda: Path("written.onnx")) == 0
    assert run_command(lambda: 1) == 1
    assert run_command(lambda: 130) == 130

    def user_mistake():
        raise UserError("--path x does not exist: give an image")

    assert run_command(user_mistake) == 2
    assert capsys.readouterr().err == "error: --path x does not exist: give an image\n"

    def worker_failed():
        raise CommandFailed("", 3)

    assert run_command(worker_failed) == 3
    assert capsys.readouterr().err == ""

    def unwritable():
        raise PermissionError(13, "Permission denied", "/ro/report.json")

    assert run_command(unwritable) == 2
    assert capsys.readouterr().err == "error: /ro/report.json: Permission denied\n"


def test_utils_keeps_no_second_runner():
    import yolox.utils.errors as errors

    assert not hasattr(errors, "run_as_command")
    import yolox.cli.common as common

    assert common.run_action is errors.run_command


@pytest.mark.parametrize("argv,flag", [
    (["benchmark", "latency", "--repeats", "0"], "--repeats"),
    (["benchmark", "latency", "--warmup", "-1"], "--warmup"),
    (["benchmark", "latency", "--batch-size", "0"], "--batch-size"),
    (["benchmark", "data", "--batch-size", "0"], "--batch-size"),
    (["check-data", "--workers", "-3"], "--workers"),
    (["train", "-b", "0"], "--batch-size"),
    (["eval", "-d", "0"], "--devices"),
    (["export-onnx", "--batch-size", "0"], "--batch-size"),
])
def test_a_bad_flag_value_is_one_line(capsys, argv, flag):
    with pytest.raises(SystemExit) as stopped:
        yolox_main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "error:" in err and "Traceback" not in err


def test_benchmark_checks_its_json_path_before_measuring(tmp_path, capsys, monkeypatch):
    import yolox.cli.benchmark as benchmark

    def must_not_measure(args):
        raise AssertionError("measured although the report could not be written")

    monkeypatch.setitem(benchmark.SUBCOMMANDS, "latency", (*benchmark.SUBCOMMANDS["latency"][:2], must_not_measure))
    assert benchmark.main(["latency", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--json {tmp_path} is a folder" in err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert benchmark.main(["latency", "--json", str(a_file / "report.json")]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err


def test_output_checks_name_read_only_paths(tmp_path, monkeypatch):
    # Root may write anywhere, so the read-only case is what os.access reports.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(UserError, match=rf"--json {re.escape(str(tmp_path / 'r.json'))} cannot be written .*read-only"):
        check_output_file(tmp_path / "r.json", "--json")
    with pytest.raises(UserError, match="read-only"):
        check_output_folder(tmp_path / "new" / "deeper", "--save-dir")


def test_visualize_attention_into_an_existing_file_is_one_line(tmp_path, capsys):
    from yolox.cli.visualize_attention import main

    a_file = tmp_path / "maps.png"
    a_file.write_text("")
    image = tmp_path / "image.png"
    image.write_bytes(b"")
    assert main(["-n", "yolox-nano", "--path", str(image), "--save-dir", str(a_file), "attention", "cam"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --save-dir {a_file} is a file, not a folder: give a folder (it is created when missing)\n"


@pytest.mark.slow
def test_the_official_train_command_line_runs_from_another_folder(tmp_path):
    """``python -m yolox.tools.train -f EXP -d 1 -b 8 -o`` (the official README's form) trains on CPU."""
    from yolox.data.shapes import generate_shapes_dataset

    data_dir = generate_shapes_dataset(tmp_path / "shapes", num_train=8, num_val=2, img_size=64, seed=0)
    exp_file = tmp_path / "tiny_exp.py"
    exp_file.write_text(
        "from yolox.exp import Exp as BaseExp\n\n\nclass Exp(BaseExp):\n    def __init__(self):\n"
        "        super().__init__()\n        self.num_classes = 5\n        self.depth, self.width = 0.33, 0.125\n"
        "        self.input_size = self.test_size = (64, 64)\n        self.multiscale_range = 0\n"
        f"        self.data_dir = {str(data_dir)!r}\n        self.train_ann, self.val_ann = 'instances_train.json', "
        "'instances_val.json'\n        self.train_name, self.val_name = 'train', 'val'\n"
        "        self.data_num_workers = 0\n        self.max_epoch, self.warmup_epochs, self.no_aug_epochs = 1, 0, 0\n"
        "        self.eval_interval = 1\n        self.seed = 0\n"
        f"        self.output_dir = {str(tmp_path / 'out')!r}\n        self.exp_name = 'tiny'\n")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "yolox.tools.train", "-f", str(exp_file), "-d", "1", "-b", "8", "-o",
                           "--device", "cpu"], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "tiny" / "last_epoch_ckpt.pth").is_file() or \
        (tmp_path / "out" / "tiny" / "latest_ckpt.pth").is_file()


def test_every_command_logs_in_the_one_format(capsys):
    from loguru import logger

    from yolox.cli.common import run_command as command_runner

    assert command_runner(lambda: logger.warning("a warning from a command")) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| WARNING  \| a warning from a command", line)


def test_a_write_failure_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert yolox_main(["make-dataset", "--out", str(a_file / "shapes"), "--train", "2", "--val", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(a_file) in err
