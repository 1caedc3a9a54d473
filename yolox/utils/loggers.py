"""Experiment trackers for ``tools/train.py -l wandb`` and ``-l mlflow``, configured as in the official YOLOX.

W&B options are trailing ``wandb-<option> value`` pairs of the train command (``wandb-project``,
``wandb-name``, ``wandb-id``, ``wandb-entity``, ``wandb-save_dir``, ``wandb-log_checkpoints``); MLflow is
configured through environment variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``,
``MLFLOW_TAGS``, ``MLFLOW_NESTED_RUN``, ``YOLOX_MLFLOW_RUN_NAME``, ``YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS``,
``YOLOX_MLFLOW_LOG_MODEL_PER_n_EPOCHS``, ``YOLOX_MLFLOW_LOG_Nth_EPOCH_MODELS``, ``YOLOX_MLFLOW_FLATTEN_PARAMS``).
Both log the scalars TensorBoard gets (``train/<loss>``, ``train/lr`` and ``attention/<block>/<figure>`` per
print interval; ``val/COCOAP50``, ``val/COCOAP50_95`` per evaluation) and, when asked, the checkpoints as artifacts. The packages are
optional extras, imported only when a logger is built.
"""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from yolox.utils.errors import UserError
from yolox.utils.run_files import BEST_CKPT, LATEST_CKPT, checkpoint_file

LOGGER_CHOICES = ("tensorboard", "wandb", "mlflow", "none")
WANDB_PREFIX = "wandb-"
WANDB_OPTIONS = ("project", "name", "id", "entity", "save_dir", "log_checkpoints", "num_eval_images")
TRUE_WORDS = ("1", "true", "yes", "on")
MLFLOW_PARAM_CHARS = 500  # the smallest value length limit among MLflow versions
MLFLOW_PARAMS_PER_CALL = 100


def _import_optional(package: str, extra: str) -> Any:
    """Import ``package`` or raise a one-line UserError naming the extra that installs it."""
    try:
        return __import__(package)
    except ImportError:
        raise UserError(f"-l {extra} needs the {package} package: pip install 'yolox-attention[{extra}]' "
                        f"(or pip install {package}), or train with another -l") from None


def _env_flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable (``1/true/yes/on``, any case)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE_WORDS


def split_wandb_options(opts: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """Split trailing ``key value`` pairs into the exp overrides and the ``wandb-<option>`` settings."""
    opts = list(opts or [])
    exp_opts: list[str] = []
    wandb_opts: dict[str, str] = {}
    for index in range(0, len(opts) - 1, 2):
        key, value = opts[index], opts[index + 1]
        if key.startswith(WANDB_PREFIX):
            option = key[len(WANDB_PREFIX):]
            if option not in WANDB_OPTIONS:
                raise UserError(f"unknown W&B option '{key}': use one of "
                                f"{', '.join(WANDB_PREFIX + name for name in WANDB_OPTIONS)}")
            wandb_opts[option] = value
        else:
            exp_opts.extend((key, value))
    if len(opts) % 2:
        exp_opts.append(opts[-1])  # an odd count: the exp merge reports it
    return exp_opts, wandb_opts


def run_config(args: Namespace, exp: Any) -> dict[str, Any]:
    """The command-line arguments and exp settings of a run, as plain values (``exp.`` prefixed)."""
    config: dict[str, Any] = {key: value for key, value in vars(args).items() if key != "opts"}
    settings = exp.public_settings() if hasattr(exp, "public_settings") else vars(exp)
    for key, value in settings.items():
        if key.startswith("_") or key in ("model", "optimizer", "dataset"):
            continue
        config[f"exp.{key}"] = value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
    return config


class WandbLogger:
    """Logs a training run to Weights & Biases (set ``WANDB_MODE=offline`` to write only to ``save_dir``)."""

    def __init__(self, project: str | None = None, name: str | None = None, id: str | None = None,
                 entity: str | None = None, save_dir: str | None = None, config: Mapping[str, Any] | None = None,
                 val_dataset: Any = None, num_eval_images: int = 100, log_checkpoints: bool = False,
                 **kwargs: Any) -> None:
        """Start (or resume, with ``id``) a W&B run; ``val_dataset`` and ``num_eval_images`` are accepted for
        compatibility, but no table of validation predictions is logged."""
        self.wandb = _import_optional("wandb", "wandb")
        self.log_checkpoints = str(log_checkpoints).strip().lower() in TRUE_WORDS
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
        init_args = {"project": project, "name": name, "id": id, "entity": entity, "dir": save_dir,
                     "config": dict(config or {}), "resume": "allow", **kwargs}
        self.run = self.wandb.run or self.wandb.init(**{k: v for k, v in init_args.items() if v is not None})
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")
        self.run.define_metric("attention/*", step_metric="train/step")
        self.run.define_metric("train/epoch")
        self.run.define_metric("val/*", step_metric="train/epoch")

    @classmethod
    def initialize_wandb_logger(cls, args: Namespace, exp: Any, val_dataset: Any = None) -> WandbLogger:
        """Build the logger from the train command: ``wandb-<option> value`` pairs in ``args.opts``."""
        _, options = split_wandb_options(getattr(args, "opts", None))
        if "num_eval_images" in options:
            logger.warning("wandb-num_eval_images is ignored: validation prediction tables are not logged")
        options.pop("num_eval_images", None)
        if "save_dir" not in options and "WANDB_DIR" not in os.environ:
            options["save_dir"] = str(exp.run_dir)
        options.setdefault("name", exp.exp_name)
        return cls(config=run_config(args, exp), val_dataset=val_dataset, **options)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars: ``val/*`` ones against ``train/epoch = step``, the others against ``train/step = step``."""
        values = {key: float(value) for key, value in metrics.items()}
        if step is not None:
            step_key = "train/epoch" if values and all(key.startswith("val/") for key in values) else "train/step"
            values[step_key] = step
        self.run.log(values)

    def save_checkpoint(self, save_dir: str | os.PathLike, model_name: str, is_best: bool,
                        metadata: Mapping[str, Any] | None = None) -> None:
        """Upload ``<save_dir>/<model_name>_ckpt.pth`` as a model artifact when ``log_checkpoints`` is on."""
        if not self.log_checkpoints:
            return
        path = Path(save_dir) / checkpoint_file(model_name)
        artifact = self.wandb.Artifact(name=f"run_{self.run.id}_model", type="model", metadata=dict(metadata or {}))
        artifact.add_file(str(path), name="model_ckpt.pth")
        aliases = ["latest"] + (["best"] if is_best else [])
        if metadata and "epoch" in metadata:
            aliases.append(f"epoch-{metadata['epoch']}")
        self.run.log_artifact(artifact, aliases=aliases)

    def finish(self) -> None:
        """Close the run (in offline mode its files stay in the save folder)."""
        self.run.finish()

    # The interface the trainer uses for every tracker.
    def log_scalars(self, scalars: Mapping[str, Any], step: int) -> None:
        """Log scalars at ``step`` (iteration for ``train/*``, epoch for ``val/*``)."""
        self.log_metrics(scalars, step)

    def log_checkpoint(self, run_dir: Path, name: str, is_best: bool, epoch: int) -> None:
        """Upload a checkpoint just written (when checkpoints are logged)."""
        self.save_checkpoint(run_dir, name, is_best, {"epoch": epoch})

    def close(self, run_dir: Path) -> None:
        """End the run."""
        self.finish()


class MlflowLogger:
    """Logs a training run to MLflow, configured through the official YOLOX environment variables.

    Without ``MLFLOW_TRACKING_URI`` runs go to a local file store in ``<run folder>/mlruns``.
    """

    def __init__(self) -> None:
        """Import MLflow and read the ``YOLOX_MLFLOW_*`` settings."""
        self.mlflow = _import_optional("mlflow", "mlflow")
        self.log_artifacts = _env_flag("YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS")
        every = os.environ.get("YOLOX_MLFLOW_LOG_MODEL_PER_n_EPOCHS", "30")
        if not every.strip().isdigit() or int(every) < 1:
            raise UserError(f"YOLOX_MLFLOW_LOG_MODEL_PER_n_EPOCHS={every!r}: use a whole number of epochs >= 1")
        self.every_n_epochs = int(every)
        self.log_epoch_models = _env_flag("YOLOX_MLFLOW_LOG_Nth_EPOCH_MODELS")
        self.flatten_params = _env_flag("YOLOX_MLFLOW_FLATTEN_PARAMS")
        self.run: Any = None

    def setup(self, args: Namespace, exp: Any) -> None:
        """Choose the store and experiment, start the run and log the run's settings as parameters."""
        run_dir = exp.run_dir
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # MLflow 3 accepts a file store only when asked to; this default is one.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        self.mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or exp.exp_name)
        self.run = self.mlflow.start_run(run_name=os.environ.get("YOLOX_MLFLOW_RUN_NAME") or None,
                                         nested=_env_flag("MLFLOW_NESTED_RUN"))
        tags = os.environ.get("MLFLOW_TAGS")
        if tags:
            try:
                self.mlflow.set_tags(json.loads(tags))
            except (json.JSONDecodeError, TypeError, AttributeError):
                raise UserError(f"MLFLOW_TAGS={tags!r} is not a JSON object such as "
                                '{"release.version": "1.0"}') from None
        params = self._flatten(run_config(args, exp)) if self.flatten_params else run_config(args, exp)
        items = [(key, str(value)[:MLFLOW_PARAM_CHARS]) for key, value in params.items()]
        for start in range(0, len(items), MLFLOW_PARAMS_PER_CALL):
            self.mlflow.log_params(dict(items[start:start + MLFLOW_PARAMS_PER_CALL]))
        logger.info(f"MLflow run {self.run.info.run_id} in {self.mlflow.get_tracking_uri()}")

    @staticmethod
    def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """Nested dicts as ``outer.inner`` keys."""
        flat: dict[str, Any] = {}
        for key, value in params.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                flat.update(MlflowLogger._flatten(value, f"{name}."))
            else:
                flat[name] = value
        return flat

    def on_log(self, args: Namespace, exp: Any, step: int, logs: Mapping[str, Any]) -> None:
        """Log numeric entries of ``logs`` as metrics at ``step``."""
        metrics = {key: float(value) for key, value in logs.items() if isinstance(value, (int, float))
                   or hasattr(value, "item")}
        self.mlflow.log_metrics(metrics, step=step)

    def save_checkpoints(self, args: Namespace, exp: Any, file_name: str | os.PathLike, metadata: Mapping[str, Any],
                         update_best_ckpt: bool) -> None:
        """Every ``YOLOX_MLFLOW_LOG_MODEL_PER_n_EPOCHS`` epochs upload the best checkpoint when it improved,
        and the epoch's own checkpoint with ``YOLOX_MLFLOW_LOG_Nth_EPOCH_MODELS``."""
        epoch = int(metadata.get("epoch", 0))
        if not self.log_artifacts or epoch % self.every_n_epochs:
            return
        run_dir = Path(file_name)
        if update_best_ckpt and (run_dir / BEST_CKPT).is_file():
            self.mlflow.log_artifact(str(run_dir / BEST_CKPT), artifact_path="checkpoints/best")
        latest = run_dir / LATEST_CKPT
        if self.log_epoch_models and latest.is_file():
            self.mlflow.log_artifact(str(latest), artifact_path=f"checkpoints/epoch_{epoch}")

    def on_train_end(self, args: Namespace, file_name: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        """Upload the best checkpoint and the text log (when artifacts are on), then end the run."""
        run_dir = Path(file_name)
        if self.log_artifacts:
            for path, folder in ((run_dir / BEST_CKPT, "checkpoints/best"), (run_dir / "train_log.txt", "logs")):
                if path.is_file():
                    self.mlflow.log_artifact(str(path), artifact_path=folder)
        self.finish()

    def finish(self) -> None:
        """End the MLflow run (when one is active)."""
        if self.run is not None:
            self.mlflow.end_run()
            self.run = None

    # The interface the trainer uses for every tracker.
    def log_scalars(self, scalars: Mapping[str, Any], step: int) -> None:
        """Log scalars at ``step`` (iteration for ``train/*``, epoch for ``val/*``)."""
        self.on_log(None, None, step, scalars)

    def log_checkpoint(self, run_dir: Path, name: str, is_best: bool, epoch: int) -> None:
        """Upload checkpoints per the ``YOLOX_MLFLOW_*`` settings after ``latest`` was written."""
        if name == "latest":
            self.save_checkpoints(None, None, run_dir, {"epoch": epoch}, is_best)

    def close(self, run_dir: Path) -> None:
        """Final uploads and end of the run."""
        self.on_train_end(None, run_dir, {})


def build_experiment_logger(kind: str, args: Namespace, exp: Any) -> WandbLogger | MlflowLogger | None:
    """The tracker that ``-l kind`` asks for (None for tensorboard/none, which the trainer handles itself)."""
    if kind == "wandb":
        return WandbLogger.initialize_wandb_logger(args, exp)
    if kind == "mlflow":
        tracker = MlflowLogger()
        tracker.setup(args, exp)
        return tracker
    return None
