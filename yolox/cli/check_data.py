"""The ``tools/check_data.py`` command: decode every training and validation image of an exp, list all problems."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from yolox.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    USER_ERRORS,
    add_exp_arguments,
    command_parser,
    exp_from_args,
    positive_int,
    run_command,
)

SHOWN_PER_KIND = 20


def make_parser() -> argparse.ArgumentParser:
    """The command-line flags: the exp flags and the number of decoding threads."""
    parser = command_parser(
        "yolox check-data", "Decode every training and validation image of an exp and report all problems at once.")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="decoding threads (default: the CPU count)")
    add_exp_arguments(parser, ckpt_help=None)
    return parser


def check_split(name: str, build: Callable[[], Any], workers: int) -> tuple[int, list[str]]:
    """Build one split without the quick start-up check, decode all its images; return (images, problems)."""
    from yolox.data.datasets.datasets_wrapper import image_problem, without_startup_image_check
    from yolox.utils.logger import collect_warnings

    # The build's warnings join the report's list instead of the console.
    try:
        with collect_warnings() as warnings, without_startup_image_check():
            dataset = build()
    except USER_ERRORS as err:
        return 0, [f"{name}: {err}"]
    records = dataset.records
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(image_problem, records))
    problems = [f"{name}: warning: {text}" for text in warnings]
    by_kind: dict[str, list[str]] = {}
    for record, problem in zip(records, found):
        if problem is not None:
            kind = problem if problem in ("missing", "cannot be decoded") else "size differs from the annotation"
            by_kind.setdefault(kind, []).append(f"{record.path} {problem}" if kind not in problem else str(record.path))
    for kind, paths in by_kind.items():
        more = f" (+{len(paths) - SHOWN_PER_KIND} more)" if len(paths) > SHOWN_PER_KIND else ""
        shown = "\n    ".join(paths[:SHOWN_PER_KIND])
        problems.append(f"{name}: {len(paths)} images {kind}{more}:\n    {shown}")
    return len(records), problems


def check_data(args: argparse.Namespace) -> int:
    """Check the exp's training and validation data; print a report and return the exit code."""
    exp = exp_from_args(args)
    splits = (("train", exp.get_dataset), ("val", exp.get_eval_dataset))
    all_problems: list[str] = []
    for name, build in splits:
        count, problems = check_split(name, build, args.workers)
        print(f"{name}: {count} images decoded, {len(problems)} problem(s)")
        all_problems.extend(problems)
    for problem in all_problems:
        print(f"  {problem}")
    if all_problems:
        print(f"error: the data of exp {exp.exp_name} has {len(all_problems)} problem(s), listed above: fix them, or "
              "remove the images from the annotations (training can skip undecodable images with skip_bad_images "
              "True)", file=sys.stderr)
        return EXIT_FAILED
    print(f"the data of exp {exp.exp_name} is fine")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and check the data; 0 when every image decodes, 1 when some do not, 2 for a user error."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: check_data(args))


if __name__ == "__main__":
    sys.exit(main())
