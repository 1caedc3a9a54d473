"""``python tools/study.py``: train every (variant, seed) of a paired study and report whether attention helps.

``python tools/study.py -f EXP --variants none,cam,se --seeds 0,1,2 [--select last|best] [--correction holm]
[--margin M] [--init-from CKPT|baseline [--finetune key value ...]] [--halving 0.2,0.5] [-d N] [-b B] [--fp16]
[key value ...]`` trains each run into ``<study_dir>/<variant>/seed<k>/`` (from scratch, or fine-tuned from one
shared detector; variants that clearly hurt stop at a halving rung), scores its final and best checkpoints and
writes the report; ``python tools/study.py report STUDY_DIR
[--remeasure]`` aggregates whatever has finished (from the study's files only: ``--remeasure`` builds the
models again, running the exp file); ``python tools/study.py plan -f EXP --variants ... --effect 0.5
(--pilot STUDY_DIR | --seed-sd 0.2) [--hours-per-run H]`` says how many seeds the study needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from yolox.cli.common import EXIT_OK, add_exp_arguments, command_parser, positive_int, run_command
from yolox.utils.errors import UserError

if TYPE_CHECKING:
    from yolox.study.executor import JobSettings


def make_parser() -> argparse.ArgumentParser:
    """Flags of the study command (the report form has its own parser)."""
    parser = command_parser(
        "yolox study", "Paired multi-seed study of attention variants against a baseline. "
        "'tools/study.py report STUDY_DIR' aggregates the runs that finished.")
    parser.add_argument("--variants", required=True,
                        help="comma-separated: attention names, 'none' (attention off) or named override sets "
                             "NAME=key:value,key:value (e.g. cam@neck=attention:cam,attention_position:neck)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, e.g. 0,1,2 or 0-4 (default 0,1,2)")
    parser.add_argument("--baseline", default=None, help="variant the others are compared with (default: none, "
                                                         "else the first variant)")
    parser.add_argument("--study-dir", default=None, help="folder of the study (default: <output_dir>/<exp_name>_study)")
    parser.add_argument("--shard", default=None, help="I/N: run only every N-th run starting at I; with --lockstep "
                                                      "the I-th of N equal slices of the runs in seed order "
                                                      "(e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    parser.add_argument("--select", default="last", choices=("last", "best"),
                        help="the checkpoint each run is scored by: last (the final EMA weights of the schedule, "
                             "default) or best (the best evaluation during training: selected on the scored set)")
    parser.add_argument("--correction", default="holm", choices=("holm", "bonferroni", "none"),
                        help="multiplicity correction over the comparisons with the baseline (default holm)")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="AP points that matter (e.g. 0.3): verdicts 'helps by more than M' and 'equivalent "
                             "within +-M' (default 0: off)")
    parser.add_argument("--effect", type=float, default=None,
                        help="AP points: the report says how many seeds each comparison needs to find this effect")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="replicates of the report's two-level bootstrap over seeds and validation images (0: off)")
    design = parser.add_argument_group("cheaper designs")
    design.add_argument("--init-from", default=None, metavar="CKPT|baseline",
                        help="fine-tune design: every run starts from this checkpoint (loaded non-strictly; "
                             "attention_init identity unless a variant sets it), or 'baseline': train the baseline "
                             "once, then fine-tune every variant from its final checkpoint")
    design.add_argument("--init-seed", type=int, default=0, help="seed of the baseline's init run (default 0)")
    design.add_argument("--init-overrides", nargs="+", default=None, metavar="KEY VALUE",
                        help="with --init-from baseline: 'key value' pairs of the init run's schedule, after the "
                             "trailing overrides (values end at the next flag)")
    design.add_argument("--finetune", nargs="+", default=None, metavar="KEY VALUE",
                        help="the fine-tune schedule of every run, e.g. max_epoch 30 warmup_epochs 1 no_aug_epochs 5 "
                             "(values end at the next flag)")
    design.add_argument("--halving", default=None, metavar="RUNGS",
                        help="successive halving: fractions of the schedule, e.g. 0.2,0.5; a variant whose paired "
                             "interval at a rung lies below -margin (after the correction) stops there")
    design.add_argument("--no-halving", action="store_true",
                        help="ignore the halving decisions of this folder: continue the stopped runs to the end")
    parser.add_argument("--retry-failed", action="store_true",
                        help="train the runs recorded as failed again (their record is kept as failed_attempt<k>.json)")
    parser.add_argument("--force", action="store_true", help="use a study folder made with other settings anyway")
    parser.add_argument("--executor", default=None, choices=("local", "slurm"),
                        help="run each run as a submitit job and wait for them: slurm (a job array; pre-empted jobs "
                             "are requeued and resume) or local (subprocesses on this machine); default: in this process")
    parser.add_argument("--slurm-partition", default=None, help="SLURM partition of the jobs")
    parser.add_argument("--slurm-gpus-per-node", type=int, default=None,
                        help="GPUs of each job (one run per job; -d defaults to this)")
    parser.add_argument("--slurm-time", default="24:00:00",
                        help="time limit of each job (minutes or [D-]HH:MM[:SS]; a run that reaches it is requeued "
                             "and resumes; default 24:00:00)")
    parser.add_argument("--slurm-array-parallelism", type=int, default=None,
                        help="at most K jobs of the array at once")
    parser.add_argument("--lockstep", action="store_true",
                        help="train the variants of each seed in one process from one data stream (each batch "
                             "loaded and augmented once); every run still gets its own folder and files")
    parser.add_argument("--lockstep-size", type=positive_int, default=None, metavar="K",
                        help="with --lockstep: at most K variants per group (default: all of a seed's)")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=64, help="total batch size of each run")
    parser.add_argument("-d", "--devices", type=positive_int, default=None, help="processes per run (as tools/train.py -d)")
    parser.add_argument("--fp16", action="store_true", help="mixed precision (as tools/train.py --fp16)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_exp_arguments(parser, ckpt_help=None)
    return parser


def make_report_parser() -> argparse.ArgumentParser:
    """Flags of ``tools/study.py report``."""
    parser = command_parser("yolox study report", "Aggregate the finished runs of a study.")
    parser.add_argument("study_dir", help="the study folder (holds study_plan.json)")
    parser.add_argument("--effect", type=float, default=None,
                        help="AP points: how many seeds each comparison needs to find this effect")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="replicates of the two-level bootstrap over seeds and validation images (0: off)")
    parser.add_argument("--remeasure", action="store_true",
                        help="build the variants' models again (this runs the exp file) and replace the recorded "
                             "params, GFLOPs and latency")
    parser.add_argument("--device", default="auto",
                        help="with --remeasure: auto (a GPU latency column too when CUDA is present), cpu or cuda[:N]")
    return parser


def run_study(args: argparse.Namespace) -> int:
    """Claim the folder, train the init run and the halving rungs when asked, then this shard's runs; report."""
    from yolox.cli.eval import main as eval_main
    from yolox.cli.train import main as train_main
    from yolox.core.launch import launched_by_torchrun
    from yolox.study.costs import record_variants
    from yolox.study.design import adopt_recorded_checkpoint, build_design
    from yolox.study.plan import build_plan, claim_study_dir, parse_shard, shard_runs
    from yolox.study.stages import StudyStages
    from yolox.utils.device import resolve_device

    if launched_by_torchrun():
        raise UserError("start tools/study.py itself, not under torchrun: use -d N for N processes per run, "
                        "and --shard I/N to spread the runs over machines")
    shard = parse_shard(args.shard)
    jobs = job_settings(args)
    if args.lockstep_size is not None and not args.lockstep:
        raise UserError(f"--lockstep-size {args.lockstep_size} sizes the groups of --lockstep: add --lockstep")
    if args.lockstep and jobs is not None:
        raise UserError(f"--lockstep trains the variants of a seed in this process, --executor {args.executor} each "
                        "run as a job of its own: drop one of them")
    if args.lockstep and (args.init_from or args.halving):
        raise UserError("--lockstep trains every variant of a seed from scratch to the end of the schedule: it does "
                        "not combine with --init-from or --halving; drop one of them")
    if args.experiment_name:
        raise UserError("-expn is not used by a study: each run's folder is <study_dir>/<variant>/seed<k>; "
                        "use --study-dir to choose the folder")
    if jobs is not None and (args.init_from == "baseline" or args.halving):
        raise UserError("--executor runs every run to its end in parallel: --init-from baseline (an init run first) "
                        "and --halving (rungs decided between runs) need the study command without --executor, "
                        "or --shard I/N")
    design = build_design(args.init_from, args.init_seed, args.init_overrides, args.finetune)
    plan, study_dir = build_plan(args.exp_file, args.name, args.variants, args.seeds, baseline=args.baseline,
                                 batch_size=args.batch_size, fp16=args.fp16, overrides=args.opts,
                                 study_dir=args.study_dir, select=args.select, correction=args.correction,
                                 margin_points=args.margin, design=design, halving=args.halving)
    plan = dataclasses.replace(plan, design=adopt_recorded_checkpoint(plan.design, study_dir))
    claim_study_dir(study_dir, plan, args.force)
    record_variants(plan, study_dir, str(resolve_device(args.device)))
    runs = shard_runs(plan.runs(study_dir), shard, contiguous=args.lockstep)
    halving = f", halving at epochs {','.join(map(str, plan.halving.epochs))}" if plan.halving.active else ""
    print(f"study {study_dir}: {len(runs)} runs in this shard ({len(plan.variants)} variants x {len(plan.seeds)} "
          f"seeds, baseline {plan.baseline}; design {plan.design.kind}{halving})", flush=True)
    if jobs is not None:
        from yolox.study.executor import run_jobs

        code = run_jobs(jobs, study_dir, runs, args.device, args.devices, args.retry_failed, train_main, eval_main)
        write_and_print_report(study_dir, args.effect, args.bootstrap)
        return code
    if args.lockstep:
        from yolox.study.lockstep import run_in_lockstep

        code = run_in_lockstep(plan, runs, args.device, args.devices, args.lockstep_size, args.retry_failed,
                               train_main, eval_main)
        write_and_print_report(study_dir, args.effect, args.bootstrap)
        return code
    stages = StudyStages(plan, study_dir, args, train_main, eval_main)
    code = stages.prepare_init(shard[0])
    if code is None:
        code = stages.train_rungs(runs)
    if code is None:
        code = stages.train_to_the_end(runs)
    write_and_print_report(study_dir, args.effect, args.bootstrap)
    return code


def job_settings(args: argparse.Namespace) -> JobSettings | None:
    """The checked ``--executor`` / ``--slurm-*`` settings, or None to train in this process."""
    from yolox.study.executor import JobSettings, require_submitit

    if args.executor != "slurm":
        given = [flag for flag, value, default in (
            ("--slurm-partition", args.slurm_partition, None), ("--slurm-time", args.slurm_time, "24:00:00"),
            ("--slurm-array-parallelism", args.slurm_array_parallelism, None)) if value != default]
        if given:
            raise UserError(f"{', '.join(given)} only apply with --executor slurm")
    if args.executor is None:
        if args.slurm_gpus_per_node is not None:
            raise UserError("--slurm-gpus-per-node needs --executor slurm (or local)")
        return None
    require_submitit()
    settings = JobSettings(args.executor, args.slurm_partition, args.slurm_gpus_per_node, args.slurm_time,
                           args.slurm_array_parallelism)
    settings.check()
    return settings


def write_and_print_report(study_dir: Path, effect: float | None = None, bootstrap: int = 1000) -> None:
    """Aggregate the finished runs, write study.md/csv/json (and study.png) and print the tables."""
    from yolox.study.report import build_report, write_report

    report = build_report(Path(study_dir), effect_points=effect, bootstrap=bootstrap)
    paths = write_report(report, Path(study_dir))
    print(report.markdown, flush=True)
    print("wrote " + ", ".join(str(path) for path in paths), flush=True)


def remeasure(study_dir: Path, device: str) -> None:
    """Build every variant's model again (running the exp file) and record its params, GFLOPs and latency."""
    from yolox.study.costs import VARIANTS_FILE, record_variants
    from yolox.study.plan import load_plan
    from yolox.utils.device import resolve_device

    plan = load_plan(study_dir)
    print(f"report --remeasure: building the models of {len(plan.variants)} variants from {plan.exp} "
          f"(this runs the exp file) into {study_dir / VARIANTS_FILE}", flush=True)
    record_variants(plan, study_dir, str(resolve_device(device)), remeasure=True)


def make_plan_parser() -> argparse.ArgumentParser:
    """Flags of ``tools/study.py plan``."""
    parser = command_parser("yolox study plan", "How many seeds a study needs to find an effect, "
                                     "with and without the multiplicity correction, and what it costs.")
    parser.add_argument("--variants", required=True, help="the variants of the planned study, as for a study")
    parser.add_argument("--baseline", default=None, help="the baseline variant (default: none, else the first)")
    parser.add_argument("--effect", type=float, required=True, help="AP points: the smallest true difference to find")
    noise = parser.add_mutually_exclusive_group(required=True)
    noise.add_argument("--pilot", default=None, help="a study folder whose paired differences give the noise")
    noise.add_argument("--seed-sd", type=float, default=None, help="AP points: the seed-to-seed sd of one run's AP")
    parser.add_argument("--hours-per-run", type=float, default=None,
                        help="hours one run of the study's schedule (the trailing overrides) trains from scratch "
                             "(default: from the pilot's measured mean time per epoch)")
    parser.add_argument("--init-from", default=None, metavar="CKPT|baseline",
                        help="plan the fine-tune design (as for a study; a --pilot should use the same design)")
    parser.add_argument("--init-overrides", nargs="+", default=None, metavar="KEY VALUE",
                        help="the init run's schedule, as for a study")
    parser.add_argument("--finetune", nargs="+", default=None, metavar="KEY VALUE",
                        help="the fine-tune schedule, as for a study")
    parser.add_argument("--halving", default=None, metavar="RUNGS", help="halving rungs, as for a study")
    parser.add_argument("--correction", default="holm", choices=("holm", "bonferroni", "none"),
                        help="multiplicity correction the planned study will use")
    parser.add_argument("--power", type=float, default=0.8, help="the chance of finding the effect (default 0.8)")
    add_exp_arguments(parser, ckpt_help=None)
    return parser


def plan_study(args: argparse.Namespace) -> int:
    """Print the seeds and cost that the planned study needs."""
    from yolox.study.design import StudyCost, build_design, schedule_epochs
    from yolox.study.plan import build_plan, load_plan
    from yolox.study.planning import noise_from_pilot, noise_from_seed_sd, plan_table

    if not 0 < args.power < 1:
        raise UserError(f"--power {args.power}: give a probability between 0 and 1, e.g. 0.8")
    design = build_design(args.init_from, 0, args.init_overrides, args.finetune)
    plan, _ = build_plan(args.exp_file, args.name, args.variants, "0", baseline=args.baseline, overrides=args.opts,
                         design=design, halving=args.halving)
    full_epochs = schedule_epochs(plan.exp, design.init_run_overrides(plan.overrides))
    hours_per_epoch = None if args.hours_per_run is None else args.hours_per_run / full_epochs
    if args.pilot:
        noise = noise_from_pilot(Path(args.pilot))
        pilot = load_plan(Path(args.pilot))
        if hours_per_epoch is None and noise.hours_per_run is not None:
            hours_per_epoch = noise.hours_per_run / schedule_epochs(pilot.exp, pilot.schedule_overrides())
        if args.hours_per_run is not None:
            noise = dataclasses.replace(noise, hours_per_run=args.hours_per_run)
    else:
        noise = noise_from_seed_sd(args.seed_sd, args.hours_per_run)
    cost = StudyCost(design, full_epochs, plan.halving.total_epochs or schedule_epochs(plan.exp, plan.schedule_overrides()),
                     plan.halving.epochs[0] if plan.halving.active else None, len(plan.variants), hours_per_epoch)
    _, text = plan_table([variant.name for variant in plan.variants], plan.baseline, args.effect, noise,
                         args.correction, power=args.power, cost_text=cost.describe)
    print(text, flush=True)
    return EXIT_OK


def make_benchmark_parser() -> argparse.ArgumentParser:
    """Flags of ``tools/study.py benchmark-bootstrap``."""
    parser = command_parser("yolox study benchmark-bootstrap", "Time the report's two-level "
                                     "bootstrap on a synthetic study (COCO-style ground truth and detections).")
    parser.add_argument("--images", type=int, default=200, help="validation images (default 200, the shapes set)")
    parser.add_argument("--classes", type=int, default=5, help="categories (default 5; COCO: 80)")
    parser.add_argument("--objects-per-image", type=float, default=3.0, help="objects per image (COCO: 7.3)")
    parser.add_argument("--detections-per-image", type=float, default=38.0,
                        help="detections per image and run (default 38, as the shapes study's runs; COCO: 100)")
    parser.add_argument("--variants", type=int, default=3, help="variants, the baseline included (default 3)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default 3)")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates (default 1000)")
    return parser


def benchmark_bootstrap_command(args: argparse.Namespace) -> int:
    """Print how long matching and the bootstrap take."""
    from yolox.study.resample import benchmark_bootstrap

    if min(args.images, args.classes, args.variants - 1, args.seeds - 1, args.replicates) < 1:
        raise UserError("benchmark-bootstrap needs at least 1 image, 1 class, 2 variants, 2 seeds and 1 replicate")
    figures = benchmark_bootstrap(args.images, args.classes, args.objects_per_image, args.detections_per_image,
                                  args.variants, args.seeds, args.replicates)
    print(f"{figures['runs']} runs ({args.variants} variants x {args.seeds} seeds), {figures['images']} images, "
          f"{figures['classes']} classes, {figures['detections_per_run']:.0f} detections per run: matching "
          f"{figures['match_seconds']:.1f} s, {figures['replicates']} bootstrap replicates "
          f"{figures['bootstrap_seconds']:.1f} s", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run a study, or ``report STUDY_DIR``; a user error exits with code 2 after one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: dispatch(argv))


def dispatch(argv: list[str]) -> int:
    """Run the form of the command that ``argv`` names (a study, report, plan, benchmark-bootstrap); its exit code."""
    if argv[:1] == ["benchmark-bootstrap"]:
        return benchmark_bootstrap_command(make_benchmark_parser().parse_args(argv[1:]))
    if argv[:1] == ["plan"]:
        return plan_study(make_plan_parser().parse_args(argv[1:]))
    if argv[:1] == ["report"]:
        args = make_report_parser().parse_args(argv[1:])
        if args.remeasure:
            remeasure(Path(args.study_dir), args.device)
        write_and_print_report(Path(args.study_dir), args.effect, args.bootstrap)
        return EXIT_OK
    return run_study(make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
