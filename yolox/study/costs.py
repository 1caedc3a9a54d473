"""What the report needs to know of each variant's model, measured once while the study runs.

``study_variants.json`` holds, per variant, the parameter count, GFLOPs, the eval latency (batch 1 at the
test size, with where and when it was measured), the class names and the resolved exp settings. The study
command writes it before its first training, so ``tools/study.py report`` never imports an exp file and
its latency column does not change from one report to the next; ``report --remeasure`` builds the models
again (running the exp file) and replaces it.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from yolox.study.plan import StudyPlan, load_variant_exp
from yolox.study.records import read_variant_record
from yolox.utils.files import create_json_exclusively, write_json_atomically

VARIANTS_FILE = "study_variants.json"
COST_KEYS = ("params", "gflops", "cpu_ms", "gpu_ms")


def measure_variants(plan: StudyPlan, names: list[str], device: str, occasion: str, repeats: int = 30,
                     warmup: int = 5) -> dict[str, dict[str, Any]]:
    """Build the models of the variants ``names``: params, GFLOPs, eval latency (median ms), classes, settings.

    The variants are timed in interleaved rounds, so a machine that slows down or speeds up during the
    measurement affects them all alike. CPU latency always; GPU latency too when ``device`` is CUDA.
    """
    import torch

    from yolox.benchmarks.model import synthetic_images
    from yolox.benchmarks.report import Summary, environment
    from yolox.utils.model_utils import get_model_stats

    exp_file, exp_name = (plan.exp, None) if plan.exp.endswith(".py") else (None, plan.exp)
    measured = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
                "occasion": occasion, **environment(device)}
    entries: dict[str, dict[str, Any]] = {}
    models = {}
    for variant in plan.variants:
        if variant.name not in names:
            continue
        exp = load_variant_exp(exp_file, exp_name, [*plan.schedule_overrides(), *variant.override_args()])
        model = exp.get_model().eval()
        stats = get_model_stats(model, tuple(exp.test_size))
        class_names = exp.resolved_class_names()
        entries[variant.name] = {
            "params": int(stats["params"]), "gflops": float(stats["gflops"]), "gpu_ms": None,
            "num_classes": int(exp.num_classes), "class_names": None if class_names is None else list(class_names),
            "settings": {key: repr(value) for key, value in sorted(exp.public_settings().items())},
            "measured": measured}
        models[variant.name] = (model, tuple(exp.test_size))
    targets = ["cpu"] + ([device] if device.startswith("cuda") else [])
    for target in targets:
        samples: dict[str, list[float]] = {name: [] for name in models}
        placed = {name: (model.to(target), synthetic_images(1, size).to(target)) for name, (model, size) in models.items()}
        for round_index in range(warmup + repeats):
            for name, (model, images) in placed.items():
                start = time.perf_counter()
                with torch.inference_mode():
                    model(images)
                if target != "cpu":
                    torch.cuda.synchronize(target)
                if round_index >= warmup:
                    samples[name].append(time.perf_counter() - start)
        key = "cpu_ms" if target == "cpu" else "gpu_ms"
        for name, values in samples.items():
            entries[name][key] = 1000.0 * Summary.of(values).median
    return entries


def read_variants(study_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The validated per-variant record of a study folder, or None when it has none."""
    path = Path(study_dir) / VARIANTS_FILE
    return read_variant_record(path)["variants"] if path.is_file() else None


def record_variants(plan: StudyPlan, study_dir: Path, device: str, remeasure: bool = False) -> dict[str, dict]:
    """Measure the variants the folder has no record of (all of them with ``remeasure``) and record them.

    Of shards that start together, the first to finish measuring creates the record and the others keep it,
    so every report of the study shows the same latency.
    """
    path = Path(study_dir) / VARIANTS_FILE
    known = {} if remeasure else (read_variants(study_dir) or {})
    wanted = [variant.name for variant in plan.variants if variant.name not in known]
    if not wanted:
        return known
    occasion = "by report --remeasure" if remeasure else "when the study started, before its trainings there"
    measured = {**known, **measure_variants(plan, wanted, device, occasion)}
    if remeasure or path.is_file():
        write_json_atomically(path, {"variants": measured})
        return measured
    if create_json_exclusively(path, {"variants": measured}):
        return measured
    return record_variants(plan, study_dir, device)  # another shard recorded them meanwhile: keep its figures


def costs_of(variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The report's cost columns (params, GFLOPs, CPU and GPU latency) of each recorded variant."""
    return {name: {key: entry.get(key) for key in COST_KEYS} for name, entry in variants.items()}


def measurement_note(variants: dict[str, dict[str, Any]] | None) -> str:
    """Where and when the recorded latency was measured, as one sentence of the report."""
    if not variants:
        return ("Params, GFLOPs and latency: not recorded in this folder; `tools/study.py report --remeasure "
                "STUDY_DIR` measures them (it builds the models, running the exp file).")
    groups: dict[str, list[str]] = {}
    for name, entry in variants.items():
        measured = entry["measured"]
        hardware = measured.get("gpu") or measured.get("processor") or measured["device"]
        place = (f"{measured['device']} ({hardware}) of host {measured['host']} at {measured['time']}, "
                 f"{measured.get('occasion', 'when the study started')}")
        groups.setdefault(place, []).append(name)
    parts = [place if len(groups) == 1 else f"{place} ({', '.join(names)})" for place, names in groups.items()]
    return (f"Latency measured once per variant, on {'; '.join(parts)} "
            "(`tools/study.py report --remeasure STUDY_DIR` measures again).")
