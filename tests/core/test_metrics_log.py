"""metrics.jsonl: appended and flushed line by line, torn lines skipped, COCO figures read from the summary."""

import json

from yolox.core.metrics_log import MetricsWriter, coco_figures_from_summary, read_metrics

COCO_SUMMARY = """ Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.312
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.501
 Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.330
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.250
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.400
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.200
"""


def test_records_are_readable_before_close_and_appended(tmp_path):
    writer = MetricsWriter(tmp_path)
    writer.write("train", iteration=10, total_loss=float("nan"), attention={"attn.dark3": {"gate_mean": 0.5}})
    first = read_metrics(tmp_path / "metrics.jsonl")  # flushed: visible while the writer is open
    assert first[0]["kind"] == "train" and first[0]["total_loss"] is None and "time" in first[0]
    writer.close()
    again = MetricsWriter(tmp_path)
    again.write("eval", epoch=1, ap50_95=0.3)
    again.close()
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "tr')  # a run killed mid-write
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [record["kind"] for record in records] == ["train", "eval"]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])["ap50_95"] == 0.3


def test_coco_figures_from_summary():
    assert coco_figures_from_summary(COCO_SUMMARY) == {"ap50_95": 0.312, "ap50": 0.501, "ap75": 0.33, "aps": -1.0,
                                                       "apm": 0.25, "apl": 0.4}
    assert coco_figures_from_summary("No detections at all") == {}
