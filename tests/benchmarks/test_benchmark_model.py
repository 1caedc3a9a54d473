"""Model benchmarks: well-formed reports on a tiny model with one repetition (no timing assertions)."""

import json
import mmap

import pytest
import torch

from yolox.benchmarks import model as benchmark_model
from yolox.benchmarks.model import (
    measure_latency,
    measure_train_step,
    minor_page_faults,
    peak_rss_bytes,
    reset_peak_rss,
    synthetic_targets,
)
from yolox.exp import get_exp
from yolox.utils.setup_env import configure_allocator

SIZE = 64


@pytest.fixture
def tiny_exp():
    """A narrow yolox-s exp with 3 classes at 64x64."""
    exp = get_exp(None, "yolox-s")
    exp.depth, exp.width, exp.num_classes = 0.33, 0.125, 3
    exp.input_size = exp.test_size = (SIZE, SIZE)
    return exp


def test_latency_reports_every_attention_with_its_overhead(tiny_exp, tmp_path):
    report = measure_latency(tiny_exp, attentions=[None, "se", "cbam"], repeats=1, warmup=0)
    assert [row["attention"] for row in report.rows] == ["none", "se", "cbam"]
    for row in report.rows:
        assert row["input"] == f"{SIZE}x{SIZE}" and row["batch"] == 1
        assert 0 < row["min ms"] <= row["median ms"] <= row["max ms"]
        assert row["vs none"] > 0 and len(row["samples ms"]) == 1
    assert report.rows[0]["vs none"] == 1.0
    assert report.settings["threads"] == torch.get_num_threads() and report.env["device"] == "cpu"
    assert tiny_exp.attention is None and getattr(tiny_exp, "model", None) is None  # the exp is left alone
    saved = json.loads(report.write_json(str(tmp_path / "latency.json")).read_text())
    assert saved["benchmark"] == "latency" and len(saved["results"]) == 3
    assert "median ms" in report.table()


def test_latency_without_a_none_row_has_no_ratio(tiny_exp):
    report = measure_latency(tiny_exp, attentions=["eca"], size=SIZE, repeats=1, warmup=0,
                             with_postprocess=False, channels_last=True)
    assert "vs none" not in report.rows[0] and report.settings["channels_last"] is True


def test_train_step_reports_time_memory_and_faults(tiny_exp):
    report = measure_train_step(tiny_exp, batch_size=2, repeats=1, warmup=0, boxes_per_image=(1, 3))
    (row,) = report.rows
    assert row["batch"] == 2 and row["input"] == f"{SIZE}x{SIZE}"
    assert row["median s"] > 0 and row["images/s"] > 0
    assert row["peak RSS GB"] > 0 and row["page faults/step"] >= 0
    assert torch.isfinite(torch.tensor(row["last loss"]))
    assert report.settings["boxes_per_image"] == "1-3"


def test_train_step_of_an_attention_exp_keeps_its_options(tiny_exp):
    tiny_exp.attention, tiny_exp.attention_kwargs = "cam", {"act": "relu"}
    report = measure_train_step(tiny_exp, batch_size=1, repeats=1, warmup=0)
    assert report.rows[0]["attention"] == "cam"


def test_allocator_configuration_is_idempotent_and_keeps_results(tiny_exp):
    before = measure_train_step(tiny_exp, batch_size=1, repeats=1, warmup=0).rows[0]["last loss"]
    first, second = configure_allocator(), configure_allocator()
    assert first == second
    after = measure_train_step(tiny_exp, batch_size=1, repeats=1, warmup=0).rows[0]["last loss"]
    assert after == before


def test_synthetic_targets_are_padded_realistic_boxes():
    targets = synthetic_targets(3, (96, 128), num_classes=5, boxes_per_image=(10, 30))
    assert targets.shape == (3, benchmark_model.MAX_LABELS, 5)
    counts = (targets.sum(dim=2) > 0).sum(dim=1)
    assert ((counts >= 10) & (counts <= 30)).all()
    real = targets[targets.sum(dim=2) > 0]
    classes, cx, cy, w, h = real.unbind(dim=1)
    assert ((classes >= 0) & (classes < 5) & (classes == classes.round())).all()
    assert ((cx - w / 2 >= 0) & (cx + w / 2 <= 128) & (cy - h / 2 >= 0) & (cy + h / 2 <= 96)).all()
    assert torch.equal(targets, synthetic_targets(3, (96, 128), num_classes=5))  # fixed seed


@pytest.mark.parametrize("bad", [(0, 3), (5, 2), (1, 500)])
def test_synthetic_targets_reject_bad_box_counts(bad):
    with pytest.raises(ValueError, match="boxes_per_image"):
        synthetic_targets(1, (64, 64), num_classes=2, boxes_per_image=bad)


def test_bad_sizes_and_repeats_are_named(tiny_exp):
    with pytest.raises(ValueError, match="multiple of 32"):
        measure_latency(tiny_exp, size=50, repeats=1, warmup=0)
    with pytest.raises(ValueError, match="repeats"):
        measure_train_step(tiny_exp, repeats=0)


def test_memory_probes_read_this_process():
    peak, source = peak_rss_bytes()
    assert peak > 10 * 2**20 and source in ("VmHWM", "ru_maxrss")
    faults = minor_page_faults()
    fresh = mmap.mmap(-1, 16 * 2**20)  # anonymous pages, mapped on first touch whatever malloc does
    fresh.write(b"x" * len(fresh))
    fresh.close()
    assert minor_page_faults() > faults
    assert isinstance(reset_peak_rss(), bool)


def test_eval_benchmark_reads_any_evaluator_through_its_headline(tiny_exp):
    """A VOC-style report has no COCO ``score`` field: the figures come from the evaluator's headline."""
    from types import SimpleNamespace

    from yolox.benchmarks.model import measure_eval

    class MetricNeutralEvaluator:
        dataloader = SimpleNamespace(dataset=[0, 1, 2])

        def evaluate_report(self, model, return_outputs=False):
            return SimpleNamespace(summary="map", rows={0: [[1, 2, 3, 4, 0.9, 0.9, 0]], 1: []})

        def headline(self, report):
            return 0.25, 0.5, report.summary

        def outputs(self, report):
            return report.rows

    tiny_exp.get_evaluator = lambda batch_size, is_distributed: MetricNeutralEvaluator()
    row = measure_eval(tiny_exp, repeats=2, warmup=0, prior_prob=None).rows[0]
    assert (row["AP50:95"], row["AP50"], row["detections"], row["images"]) == (0.25, 0.5, 1, 3)
    assert row["same AP every run"] is True
