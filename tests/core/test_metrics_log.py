"""metrics.jsonl: appended and flushed line by line, torn lines skipped."""

import json

from yolox.core.metrics_log import MetricsWriter, read_metrics


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

