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



def test_only_a_torn_last_line_is_silent_other_bad_lines_are_counted(tmp_path):
    from yolox.core.metrics_log import parse_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "iteration": 1}\n'
                    'garbage\n'
                    '[1, 2]\n'
                    '{"kind": "unknown"}\n'
                    '{"kind": "eval", "ap50_95": 0.1}\n'
                    '{"kind": "tr')
    parsed = parse_metrics(path)
    assert [record["kind"] for record in parsed.records] == ["train", "eval"]
    assert parsed.bad_lines == [2, 3, 4]
    path.write_text('{"kind": "train", "iteration": 1}\n{"kind": "tr')
    assert parse_metrics(path).bad_lines == []


def test_a_resumed_writer_cuts_the_torn_line_first(tmp_path):
    from yolox.core.metrics_log import parse_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "iteration": 1}\n{"kind": "tr')
    writer = MetricsWriter(tmp_path)
    writer.write("train", iteration=2)
    writer.close()
    parsed = parse_metrics(path)
    assert [record["iteration"] for record in parsed.records] == [1, 2] and parsed.bad_lines == []
