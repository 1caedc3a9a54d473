"""-l wandb and -l mlflow: options as in the official YOLOX, scalars and checkpoints logged, clear errors."""

import sys
from pathlib import Path

import pytest

from yolox.cli.train import main as train_main
from yolox.utils.errors import UserError
from yolox.utils.loggers import MlflowLogger, WandbLogger, split_wandb_options

EXP_FILE = str(Path(__file__).resolve().parent / "exps" / "coco_custom_official_style.py")
TRAIN_ARGS = ["-f", EXP_FILE, "--device", "cpu", "-b", "2"]
TRAIN_SCALARS = {"train/total_loss", "train/iou_loss", "train/conf_loss", "train/cls_loss", "train/l1_loss", "train/lr"}
VAL_SCALARS = {"val/COCOAP50", "val/COCOAP50_95"}
# An identity-initialised SE block per level: its usage is a gate mean, a gate spread and the learnt scale.
ATTENTION_OPTS = ["attention", "se", "attention_init", "identity"]
ATTENTION_SCALARS = {f"attention/attn.{level}/{figure}" for level in ("dark3", "dark4", "dark5")
                     for figure in ("gate_mean", "gate_std", "scale")}


def test_wandb_options_are_split_from_the_exp_overrides():
    exp_opts, wandb_opts = split_wandb_options(["max_epoch", "2", "wandb-project", "p", "wandb-log_checkpoints", "1"])
    assert exp_opts == ["max_epoch", "2"] and wandb_opts == {"project": "p", "log_checkpoints": "1"}
    with pytest.raises(UserError, match="wandb-projet"):
        split_wandb_options(["wandb-projet", "p"])


@pytest.mark.parametrize("package, logger_class", [("wandb", WandbLogger), ("mlflow", MlflowLogger)])
def test_a_missing_package_names_the_extra(monkeypatch, package, logger_class):
    monkeypatch.setitem(sys.modules, package, None)  # makes the import fail
    with pytest.raises(UserError, match=rf"yolox-attention\[{package}\]"):
        logger_class()


def test_wandb_options_without_the_wandb_logger_are_refused(coco_root, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("YOLOX_DATADIR", str(coco_root.parent))
    monkeypatch.chdir(tmp_path)
    assert train_main([*TRAIN_ARGS, "wandb-project", "p"]) == 2
    assert "add -l wandb" in capsys.readouterr().err


@pytest.mark.slow
def test_wandb_offline_run_holds_the_scalars_and_the_checkpoint(coco_root, monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("YOLOX_DATADIR", str(coco_root.parent))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    save_dir = tmp_path / "wandb_runs"
    assert train_main([*TRAIN_ARGS, "-l", "wandb", "wandb-project", "compat", "wandb-save_dir", str(save_dir),
                       "wandb-log_checkpoints", "True", *ATTENTION_OPTS]) == 0
    run_files = list((save_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    # The run file is a log of protobuf records, in which every logged key and artifact file name is a plain string.
    records = run_files[0].read_bytes()
    for name in TRAIN_SCALARS | VAL_SCALARS | ATTENTION_SCALARS | {"train/step", "train/epoch", "model_ckpt.pth"}:
        assert name.encode() in records, name


@pytest.mark.slow
def test_mlflow_file_store_run_holds_the_scalars_and_the_best_checkpoint(coco_root, monkeypatch, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("YOLOX_DATADIR", str(coco_root.parent))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TAGS", "YOLOX_MLFLOW_RUN_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS", "True")
    monkeypatch.setenv("YOLOX_MLFLOW_LOG_MODEL_PER_n_EPOCHS", "1")
    monkeypatch.setenv("MLFLOW_TAGS", '{"purpose": "compat-test"}')
    monkeypatch.chdir(tmp_path)
    assert train_main([*TRAIN_ARGS, "-l", "mlflow", *ATTENTION_OPTS]) == 0
    run_dir = tmp_path / "YOLOX_outputs" / "coco_custom_official_style"
    client = mlflow.MlflowClient((run_dir / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("coco_custom_official_style")
    (run,) = client.search_runs([experiment.experiment_id])
    assert TRAIN_SCALARS | VAL_SCALARS | ATTENTION_SCALARS <= set(run.data.metrics)
    # The attention usage is logged at the iterations of the progress lines, as the losses are.
    loss_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/total_loss")]
    scale_history = client.get_metric_history(run.info.run_id, "attention/attn.dark3/scale")
    assert [m.step for m in scale_history] == loss_steps
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/COCOAP50")] == [1]
    assert run.data.tags["purpose"] == "compat-test" and run.data.params["exp.num_classes"] == "2"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints/best")] == [
        "checkpoints/best/best_ckpt.pth"]
    assert run.info.status == "FINISHED"
