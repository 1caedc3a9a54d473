"""Study files as data: validated on read (one-line errors naming file and field), written whole, never an exp import."""

import errno
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from yolox.cli.study import main as study_main
from yolox.study import costs, report
from yolox.study.plan import PLAN_FILE, StudyPlan, claim_study_dir, load_plan, parse_variants
from yolox.study.records import StudyFileError, read_looks, read_sessions, read_variant_record
from yolox.study.runner import execute_run, run_status
from yolox.utils.errors import UserError
from yolox.utils.files import write_json_atomically

SHAPES_EXP = str(Path(__file__).resolve().parents[2] / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
AP = {"none": {0: 0.30, 1: 0.32}, "cam": {0: 0.33, 1: 0.34}}


def _plan(exp: str = "exps/x.py", seeds=(0, 1), overrides=()) -> StudyPlan:
    return StudyPlan(exp, "x", parse_variants("none,cam", ["cam"]), list(seeds), "none", 4, False, list(overrides))


def _write_done_run(study_dir: Path, variant: str, seed: int, ap: float) -> Path:
    run_dir = study_dir / variant / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    stats = {"AP50:95": ap, "AP50": ap + 0.2}
    write_json_atomically(run_dir / "run.json", {"status": "done", "variant": variant, "seed": seed, "select": "last",
                                                 "ap50_95": ap, "ap50": ap + 0.2, "stats": stats,
                                                 "scored": {"last": {"ap50_95": ap, "stats": stats}}})
    return run_dir


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    claim_study_dir(tmp_path, _plan(), force=False)
    for variant, by_seed in AP.items():
        for seed, ap in by_seed.items():
            _write_done_run(tmp_path, variant, seed, ap)
    return tmp_path


def _one_line_error(capsys, argv: list[str]) -> str:
    assert study_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_shards_claiming_at_the_same_instant_with_other_settings_cannot_both_win(tmp_path: Path):
    plans = [_plan(seeds=(0, 1)), _plan(seeds=(0, 1, 2)), _plan(seeds=(0, 1)), _plan(seeds=(5,))]
    start = threading.Barrier(len(plans))
    outcomes: list[str] = [""] * len(plans)

    def claim(index: int) -> None:
        start.wait()
        try:
            claim_study_dir(tmp_path, plans[index], force=False)
            outcomes[index] = "claimed"
        except UserError:
            outcomes[index] = "refused"

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = load_plan(tmp_path).to_dict()
    winners = [index for index, outcome in enumerate(outcomes) if outcome == "claimed"]
    assert winners and all(plans[index].to_dict() == stored for index in winners)
    assert all(plans[index].to_dict() != stored for index, outcome in enumerate(outcomes) if outcome == "refused")
    assert sorted(path.name for path in tmp_path.iterdir()) == [PLAN_FILE]


def _write_reports_until(built: report.StudyReport, study_dir: Path, stop, written) -> None:
    while not stop.is_set():
        report.write_report(built, study_dir)
        with written.get_lock():
            written.value += 1


def test_study_json_is_never_seen_half_written_while_two_reports_are_written(study_dir: Path, monkeypatch):
    # The plot is the slow part of a report; a stand-in keeps the writers rewriting the tables back to back.
    monkeypatch.setattr(report, "write_plot", lambda built, path: Path(path).write_bytes(b"png"))
    built = report.build_report(study_dir, costs={}, bootstrap=0, log_look=False)
    report.write_report(built, study_dir)
    context = multiprocessing.get_context("fork")  # the writers inherit the built report
    stop, written = context.Event(), context.Value("i", 0)
    writers = [context.Process(target=_write_reports_until, args=(built, study_dir, stop, written)) for _ in range(2)]
    for writer in writers:
        writer.start()
    reads = 0
    try:
        # Hundreds of reads, spread over at least 200 rewrites whatever the speed of either side.
        while reads < 300 or written.value < 200:
            reads += 1
            parsed = json.loads((study_dir / "study.json").read_text())
            assert parsed["ap_unit"] == "fraction" and len(parsed["variants"]) == 2
            assert (study_dir / "study.md").read_text().startswith("# Study of x")
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert not list(study_dir.glob(".*.tmp"))


def test_a_report_that_fails_midway_leaves_the_previous_one_whole(study_dir: Path, monkeypatch):
    first = report.build_report(study_dir, costs={}, bootstrap=0, log_look=False)
    paths = report.write_report(first, study_dir)
    before = {path.name: path.read_bytes() for path in paths}
    _write_done_run(study_dir, "cam", 1, 0.50)  # the next report differs
    second = report.build_report(study_dir, costs={}, bootstrap=0, log_look=False)
    original_csv = report._write_csv

    def disk_full(built, path):
        original_csv(built, path)
        path.write_text(path.read_text()[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "_write_csv", disk_full)
    with pytest.raises(OSError, match="No space"):
        report.write_report(second, study_dir)
    assert {path.name: path.read_bytes() for path in paths} == before
    assert not list(study_dir.glob(".*.tmp"))


@pytest.mark.parametrize("content, expected", [
    (b'{"exp": "exps/x.py", "exp_na', "not valid JSON"),
    (b"\x89PNG\x00\xff\xfe garbage", "not text"),
    (b"", "empty"),
    (b'{"exp": "exps/x.py", "exp_name": "x", "variants": {"none": []}, "seeds": [0, "one"], "baseline": "none", '
     b'"batch_size": 4, "fp16": false}', "field seeds = [0, 'one'] is not a list of distinct"),
    (b'{"exp": "exps/x.py", "exp_name": "x", "variants": {"none": []}, "seeds": [0], "baseline": "cam", '
     b'"batch_size": 4, "fp16": false}', "field baseline = 'cam' is not one of the variants"),
])
def test_a_bad_plan_file_is_one_line_naming_the_file_and_field(study_dir: Path, capsys, content: bytes, expected: str):
    (study_dir / PLAN_FILE).write_bytes(content)
    err = _one_line_error(capsys, ["report", str(study_dir), "--bootstrap", "0"])
    assert PLAN_FILE in err and expected in err


@pytest.mark.parametrize("content, expected", [
    (b'{"status": "done", "ap50_95": 0.3', "not valid JSON"),
    (b"\x00\x01\xff garbage", "not text"),
    (b'{"status": "done", "ap50_95": 5.0}', "field ap50_95 = 5.0 is not a fraction of AP in [0, 1]"),
    (b'{"status": "done", "ap50_95": 0.3, "scored": {"last": {"ap50_95": 31.0}}}', "field scored.last.ap50_95 = 31.0"),
    (b'{"status": "done", "ap50_95": 0.3, "stats": {"AP75": -0.5}}', "field stats.AP75 = -0.5"),
    (b'{"status": "finished", "ap50_95": 0.3}', "field status = 'finished' is not 'done' or 'failed'"),
    (b'[0.3]', "should be a JSON object"),
])
def test_a_corrupt_run_record_is_not_done_and_the_report_lists_it(study_dir: Path, capsys, content: bytes,
                                                                 expected: str):
    run_file = study_dir / "cam" / "seed1" / "run.json"
    run_file.write_bytes(content)
    assert run_status(_plan().runs(study_dir)[3]) == "corrupt"
    assert study_main(["report", str(study_dir), "--bootstrap", "0"]) == 0
    markdown = (study_dir / "study.md").read_text()
    corrupt_line = next(line for line in markdown.splitlines() if line.startswith("Corrupt runs"))
    assert f"cam/seed1: {run_file}" in corrupt_line and expected in corrupt_line
    assert "3/4 runs finished" in markdown
    stored = json.loads((study_dir / "study.json").read_text())
    assert list(stored["runs"]["cam"]) == ["0"] and len(stored["corrupt"]) == 1


def test_only_a_torn_last_metrics_line_is_silent(study_dir: Path):
    lines = [{"kind": "eval", "epoch": 1, "ap50_95": 0.1}, "garbage {", {"kind": "eval", "epoch": 2, "ap50_95": 5.0},
             {"kind": "eval", "epoch": 3, "ap50_95": 0.3}]
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (study_dir / "cam" / "seed0" / "metrics.jsonl").write_text(text + '{"kind": "ev')
    (study_dir / "cam" / "seed1" / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n" + '{"kind": "eval", "ep')
    built = report.build_report(study_dir, costs={}, bootstrap=0, log_look=False)
    assert built.curves["cam"][0] == {1: 0.1, 3: 0.3} and built.curves["cam"][1] == {1: 0.1}
    assert built.bad_metrics == ["cam/seed0/metrics.jsonl: 2 bad line(s) skipped (line 2, 3)"]
    assert "Bad lines in metrics files (skipped in the curves): cam/seed0/metrics.jsonl: 2" in built.markdown


def test_bad_sessions_looks_and_variant_records_name_file_and_field(tmp_path: Path):
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps([{"start": 10.0, "end": 5.0}]))
    with pytest.raises(StudyFileError, match=r"sessions.json: field \[0\].end = 5.0 is not null or a time at or after"):
        read_sessions(sessions)
    looks = tmp_path / "looks.json"
    looks.write_text('[{"number": 1, "plan_seeds": [0, 1], "ti')
    with pytest.raises(StudyFileError, match="looks.json: not valid JSON"):
        read_looks(looks)
    record = tmp_path / costs.VARIANTS_FILE
    record.write_text(json.dumps({"variants": {"cam": {"params": 10, "gflops": -1.0}}}))
    with pytest.raises(StudyFileError, match=r"study_variants.json: field variants.cam.gflops = -1.0 is not a number"):
        read_variant_record(record)


MARKING_EXP = """from pathlib import Path

from yolox.data.shapes import SHAPE_CLASSES
from yolox.exp.default.yolox_nano import Exp as NanoExp

Path({marker!r}).write_text("the exp file ran")


class Exp(NanoExp):
    def __init__(self):
        super().__init__()
        self.num_classes = len(SHAPE_CLASSES)
        self.class_names = SHAPE_CLASSES
"""


def test_report_runs_no_exp_file_and_says_where_latency_was_measured(tmp_path: Path, capsys):
    marker = tmp_path / "exp_was_run"
    exp_file = tmp_path / "marking_exp.py"
    exp_file.write_text(MARKING_EXP.format(marker=str(marker)))
    study_dir = tmp_path / "study"
    claim_study_dir(study_dir, _plan(str(exp_file), overrides=["test_size", "64,64"]), force=False)
    for variant, by_seed in AP.items():
        for seed, ap in by_seed.items():
            _write_done_run(study_dir, variant, seed, ap)
    assert study_main(["report", str(study_dir), "--bootstrap", "0"]) == 0
    assert not marker.exists()
    assert "not recorded in this folder; `tools/study.py report --remeasure" in (study_dir / "study.md").read_text()
    capsys.readouterr()

    assert study_main(["report", str(study_dir), "--bootstrap", "0", "--remeasure", "--device", "cpu"]) == 0
    assert marker.exists() and "(this runs the exp file)" in capsys.readouterr().out
    marker.unlink()
    recorded = read_variant_record(study_dir / costs.VARIANTS_FILE)["variants"]
    assert recorded["cam"]["params"] > recorded["none"]["params"] and recorded["none"]["num_classes"] == 5
    assert recorded["cam"]["settings"]["attention"] == "'cam'" and recorded["none"]["class_names"][0] == "circle"
    assert study_main(["report", str(study_dir), "--bootstrap", "0"]) == 0
    assert not marker.exists()
    markdown = (study_dir / "study.md").read_text()
    measured = recorded["none"]["measured"]
    assert f"Latency measured once per variant, on cpu ({measured['processor']}) of host {measured['host']} at " \
           f"{measured['time']}, by report --remeasure" in markdown
    rows = {row["variant"]: row for row in json.loads((study_dir / "study.json").read_text())["variants"]}
    assert rows["cam"]["cpu_ms"] == recorded["cam"]["cpu_ms"]


def test_variants_are_measured_once_per_study(tmp_path: Path, monkeypatch):
    calls: list[list[str]] = []

    def fake_measure(plan, names, device, occasion):
        calls.append(list(names))
        return {name: {"params": 1, "gflops": 1.0, "cpu_ms": 2.0, "gpu_ms": None, "num_classes": 1, "class_names": None,
                       "settings": {}, "measured": {"time": "t", "host": "h", "device": device, "occasion": occasion}}
                for name in names}

    monkeypatch.setattr(costs, "measure_variants", fake_measure)
    plan = _plan()
    costs.record_variants(plan, tmp_path, "cpu")
    costs.record_variants(plan, tmp_path, "cpu")
    assert calls == [["none", "cam"]]
    wider = StudyPlan("exps/x.py", "x", parse_variants("none,cam,se", ["cam", "se"]), [0], "none", 4, False)
    costs.record_variants(wider, tmp_path, "cpu")
    costs.record_variants(wider, tmp_path, "cpu", remeasure=True)
    assert calls == [["none", "cam"], ["se"], ["none", "cam", "se"]]


def test_a_run_with_a_corrupt_record_is_trained_again(tmp_path: Path):
    plan = _plan(SHAPES_EXP)
    run = plan.runs(tmp_path)[1]
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "run.json").write_text('{"status": "done", "ap50_95": 5.0}')
    (run.run_dir / "latest_ckpt.pth").write_bytes(b"")
    commands: list[list[str]] = []

    def fake_train(argv: list[str]) -> int:
        commands.append(argv)
        (run.run_dir / "last_epoch_ckpt.pth").write_bytes(b"")
        return 0

    def fake_eval(argv: list[str]) -> int:
        write_json_atomically(run.run_dir / "eval_results.json", {"ap50_95": 0.25, "ap50": 0.5, "stats": {}})
        return 0

    assert run_status(run) == "corrupt"
    assert execute_run(plan, run, "cpu", None, fake_train, fake_eval).status == "done"
    assert "--resume" in commands[0] and run_status(run) == "done"
    assert json.loads((run.run_dir / "corrupt_run1.json").read_text())["ap50_95"] == 5.0


def test_an_unreadable_detections_file_only_turns_the_bootstrap_off(study_dir: Path):
    for variant, by_seed in AP.items():
        for seed in by_seed:
            (study_dir / variant / f"seed{seed}" / "detections.npz").write_bytes(b"PK\x03\x04 truncated")
    built = report.build_report(study_dir, costs={}, bootstrap=50, log_look=False)
    assert built.bootstrap["replicates"] == 0
    assert "detections.npz is not a detections file (BadZipFile" in built.bootstrap["note"]
