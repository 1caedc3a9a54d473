"""Installs the yolox package (the tools and exps are used from the checkout)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_requirements() -> list:
    """Core requirements from requirements.txt, without comments."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def read_version() -> str:
    """The version string declared in yolox/__init__.py."""
    text = (HERE / "yolox" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


setup(
    name="yolox-attention",
    version=read_version(),
    description="YOLOX object detector with plug-in attention blocks (CAM, SE, ECA, CBAM) in the PAFPN neck",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=("yolox", "yolox.*")),
    python_requires=">=3.10",
    install_requires=read_requirements(),
    entry_points={"console_scripts": ["yolox = yolox.cli.main:main"]},
    extras_require={
        # The W&B and MLflow clients install in seconds; with them the logger tests run instead of skipping.
        "dev": ["pytest", "ruff", "onnx", "onnxruntime", "wandb", "mlflow-skinny", "matplotlib", "statsmodels", "pyyaml",
                "tensorboard", "submitit"],
        "onnx": ["onnx", "onnxruntime"],
        # `yolox export-onnx --simplify`; onnxsim builds from source where no wheel fits, so it stays optional.
        "onnxsim": ["onnx", "onnxsim"],
        "tensorboard": ["tensorboard"],
        "fast-eval": ["faster-coco-eval"],
        "plot": ["matplotlib"],
        # YOLO-format data (dataset_format "yolo"): only its data.yaml needs a YAML parser.
        "yolo": ["pyyaml"],
        "wandb": ["wandb"],
        # The tracking client only; a full "mlflow" install (server, UI) works the same.
        "mlflow": ["mlflow-skinny"],
        # tools/study.py --executor slurm|local: the study's runs as submitit jobs.
        "slurm": ["submitit"],
    },
)
