"""The data benchmark: generated COCO-like set, measurement summary, and the tool's table and JSON."""

import json

import pytest

from yolox.benchmarks.data import write_synthetic_coco
from yolox.benchmarks.report import BenchmarkReport, Summary, time_repeated
from yolox.data import COCODataset


def load_tool():
    """The benchmark command's module."""
    from yolox.cli import benchmark

    return benchmark


def test_synthetic_coco_loads_with_the_requested_classes(tmp_path):
    root = write_synthetic_coco(tmp_path, num_images=3, image_hw=(48, 64), num_classes=5)
    dataset = COCODataset(str(root), img_size=(64, 64), num_classes=5)
    assert len(dataset) == 3 and all(len(dataset.load_anno(index)) for index in range(3))
    assert dataset.load_resized_img(0).shape == (48, 64, 3)


def test_summary_and_timing():
    summary = Summary.of([2.0, 1.0, 4.0])
    assert (summary.median, summary.minimum, summary.maximum, summary.spread) == (2.0, 1.0, 4.0, 1.5)
    calls = []
    assert len(time_repeated(lambda: calls.append(1), repeats=3, warmup=2)) == 3 and len(calls) == 5
    with pytest.raises(ValueError, match="empty"):
        Summary.of([])


def test_data_subcommand_prints_table_and_writes_json(tmp_path, capsys):
    tool = load_tool()
    out = tmp_path / "data.json"
    code = tool.main(["data", "-n", "yolox-nano", "--tsize", "128", "--workers", "0", "--images", "4",
                      "--batch-size", "2", "--batches", "1", "--repeats", "2", "--warmup", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "images/s" in printed and "workers" in printed
    report = json.loads(out.read_text())
    assert report["benchmark"] == "data" and report["settings"]["input_size"] == [128, 128]
    assert report["results"][0]["workers"] == 0 and report["results"][0]["images/s"] > 0
    assert {"torch_threads", "device", "date"} <= set(report["environment"])
    assert tool.main(["data", "--workers", "0,x"]) == 2  # a bad flag is a one-line error, exit code 2


def test_report_table_lists_rows():
    report = BenchmarkReport("demo", [{"a": 1, "b": 2.5}], {}, {})
    assert "2.50" in report.table() and report.as_dict()["results"] == [{"a": 1, "b": 2.5}]


def test_data_benchmark_leaves_the_callers_exp_alone(tmp_path):
    from yolox.benchmarks.data import benchmark_data_pipeline
    from yolox.exp import get_exp

    exp = get_exp(None, "yolox-nano")
    exp.data_dir = str(write_synthetic_coco(tmp_path, num_images=2, image_hw=(48, 64), num_classes=80))
    exp.train_ann, exp.train_name, exp.input_size = "instances_train2017.json", "train2017", (64, 64)
    workers_before = exp.data_num_workers
    report = benchmark_data_pipeline(exp, [0], batch_size=1, batches=1, repeats=1, warmup=0)
    assert report.rows[0]["workers"] == 0
    assert exp.data_num_workers == workers_before and getattr(exp, "dataset", None) is None


def test_eval_subcommand_scores_the_generated_shapes(tmp_path):
    out = tmp_path / "eval.json"
    code = load_tool().main(["eval", "--images", "2", "--tsize", "64", "--batch-size", "2", "--repeats", "1",
                             "--warmup", "0", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["results"][0]["images"] == 2 and report["settings"]["input"] == "64x64"


def test_all_passes_the_device_on_and_reports_it(monkeypatch, tmp_path):
    import torch

    tool = load_tool()
    seen = []

    def fake_eval(args):
        seen.append(args.device)
        return BenchmarkReport("eval", [{"model": "m", "median s": 1.0}], {}, {"device": args.device})

    monkeypatch.setattr("yolox.utils.device.resolve_device", lambda name: torch.device("cuda", 3))
    monkeypatch.setattr(tool, "ALL_RUNS", (("eval", []),))
    monkeypatch.setitem(tool.SUBCOMMANDS, "eval", (*tool.SUBCOMMANDS["eval"][:2], fake_eval))
    out = tmp_path / "all.json"
    assert tool.main(["all", "--device", "cuda:3", "--json-dir", str(tmp_path), "--json", str(out)]) == 0
    assert seen == ["cuda:3"] and json.loads(out.read_text())["environment"]["device"] == "cuda:3"
