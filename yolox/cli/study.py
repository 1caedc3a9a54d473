"""``python tools/study.py``: train every (variant, seed) of a paired study and report whether attention helps.

``python tools/study.py -f EXP --variants none,cam,se --seeds 0,1,2 [-d N] [-b B] [--fp16] [key value ...]``
trains each run into ``<study_dir>/<variant>/seed<k>/``, evaluates its best checkpoint and writes the
report; ``python tools/study.py report STUDY_DIR`` aggregates whatever has finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolox.cli.common import EXIT_OK, EXIT_USER_ERROR, USER_ERRORS, add_exp_arguments, report_error
from yolox.utils.errors import UserError


def make_parser() -> argparse.ArgumentParser:
    """Flags of the study command (the report form has its own parser)."""
    parser = argparse.ArgumentParser(
        "yolox study", description="Paired multi-seed study of attention variants against a baseline. "
        "'tools/study.py report STUDY_DIR' aggregates the runs that finished.")
    parser.add_argument("--variants", required=True,
                        help="comma-separated: attention names, 'none' (attention off) or named override sets "
                             "NAME=key:value,key:value (e.g. cam@neck=attention:cam,attention_position:neck)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, e.g. 0,1,2 or 0-4 (default 0,1,2)")
    parser.add_argument("--baseline", default=None, help="variant the others are compared with (default: none, "
                                                         "else the first variant)")
    parser.add_argument("--study-dir", default=None, help="folder of the study (default: <output_dir>/<exp_name>_study)")
    parser.add_argument("--shard", default=None, help="I/N: run only every N-th run starting at I "
                                                      "(e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    parser.add_argument("--force", action="store_true", help="use a study folder made with other settings anyway")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size of each run")
    parser.add_argument("-d", "--devices", type=int, default=None, help="processes per run (as tools/train.py -d)")
    parser.add_argument("--fp16", action="store_true", help="mixed precision (as tools/train.py --fp16)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_exp_arguments(parser, ckpt_help=None)
    return parser


def make_report_parser() -> argparse.ArgumentParser:
    """Flags of ``tools/study.py report``."""
    parser = argparse.ArgumentParser("yolox study report", description="Aggregate the finished runs of a study.")
    parser.add_argument("study_dir", help="the study folder (holds study_plan.json)")
    parser.add_argument("--device", default="auto",
                        help="auto (a GPU latency column too when CUDA is present), cpu or cuda[:N]")
    return parser


def build_plan(args: argparse.Namespace):
    """Check every variant's exp (unknown names and keys fail here, before training) and return the plan and folder."""
    from yolox.cli.common import exp_from_args
    from yolox.models.attention import available_attentions
    from yolox.study.plan import BASELINE_NAME, StudyPlan, parse_seeds, parse_variants

    if not (args.exp_file or args.name):
        raise UserError("name the exp with -f EXP_FILE or -n NAME (e.g. -f exps/example/shapes/yolox_nano_cam_shapes.py)")
    if args.experiment_name:
        raise UserError("-expn is not used by a study: each run's folder is <study_dir>/<variant>/seed<k>; "
                        "use --study-dir to choose the folder")
    variants = parse_variants(args.variants, available_attentions())
    seeds = parse_seeds(args.seeds)
    names = [variant.name for variant in variants]
    baseline = args.baseline or (BASELINE_NAME if BASELINE_NAME in names else names[0])
    if baseline not in names:
        raise UserError(f"--baseline {baseline!r} is not among the variants ({', '.join(names)})")
    base_exp = exp_from_args(args)
    for variant in variants:
        variant_args = argparse.Namespace(**{**vars(args), "opts": [*(args.opts or []), *variant.override_args()]})
        try:
            exp_from_args(variant_args)
        except UserError as err:
            raise UserError(f"variant {variant.name!r}: {err}") from None
    if args.batch_size < 1:
        raise UserError(f"-b/--batch-size {args.batch_size} must be at least 1")
    plan = StudyPlan(exp=args.exp_file or args.name, exp_name=base_exp.exp_name, variants=variants, seeds=seeds,
                     baseline=baseline, batch_size=args.batch_size, fp16=bool(args.fp16), overrides=list(args.opts or []))
    study_dir = Path(args.study_dir) if args.study_dir else Path(base_exp.output_dir) / f"{base_exp.exp_name}_study"
    return plan, study_dir


def run_study(args: argparse.Namespace) -> int:
    """Claim the folder, run this shard's unfinished runs in order, then write the report."""
    from yolox.cli.eval import main as eval_main
    from yolox.cli.train import main as train_main
    from yolox.core.launch import launched_by_torchrun
    from yolox.study.plan import claim_study_dir, parse_shard, shard_runs
    from yolox.study.runner import execute_run, run_status

    if launched_by_torchrun():
        raise UserError("start tools/study.py itself, not under torchrun: use -d N for N processes per run, "
                        "and --shard I/N to spread the runs over machines")
    shard = parse_shard(args.shard)
    plan, study_dir = build_plan(args)
    claim_study_dir(study_dir, plan, args.force)
    runs = shard_runs(plan.runs(study_dir), shard)
    print(f"study {study_dir}: {len(runs)} runs in this shard "
          f"({len(plan.variants)} variants x {len(plan.seeds)} seeds, baseline {plan.baseline})", flush=True)
    code = EXIT_OK
    for position, run in enumerate(runs, 1):
        status = run_status(run)
        if status == "done":
            print(f"[{position}/{len(runs)}] {run.label}: finished before, skipped", flush=True)
            continue
        print(f"[{position}/{len(runs)}] {run.label}: {'continuing' if status == 'interrupted' else 'training'}",
              flush=True)
        code = execute_run(plan, run, args.device, args.devices, train_main, eval_main)
        if code != 0:
            print(f"[{position}/{len(runs)}] {run.label}: stopped with exit code {code}; run the same command "
                  "again to continue", file=sys.stderr, flush=True)
            break
    write_and_print_report(study_dir, args.device)
    return code


def write_and_print_report(study_dir: Path, device: str) -> None:
    """Aggregate the finished runs, write study.md/csv/json (and study.png) and print the tables."""
    from yolox.study.report import build_report, write_report
    from yolox.utils.device import resolve_device

    report = build_report(Path(study_dir), device=str(resolve_device(device)))
    paths = write_report(report, Path(study_dir))
    print(report.markdown, flush=True)
    print("wrote " + ", ".join(str(path) for path in paths), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run a study, or ``report STUDY_DIR``; a user error exits with code 2 after one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["report"]:
            args = make_report_parser().parse_args(argv[1:])
            write_and_print_report(Path(args.study_dir), args.device)
            return EXIT_OK
        return run_study(make_parser().parse_args(argv))
    except USER_ERRORS as err:
        report_error(err)
        return EXIT_USER_ERROR
