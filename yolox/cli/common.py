"""Command-line flags shared by the tools; argparse only, so a tool's ``--help`` stays quick (no torch)."""

import argparse


def add_exp_arguments(parser: argparse.ArgumentParser, overrides_nargs: str = argparse.REMAINDER) -> None:
    """Add the flags naming the exp and checkpoint (-expn, -n, -f, -c) and the exp overrides positional, last."""
    parser.add_argument("-expn", "--experiment-name", default=None,
                        help="override the exp name, which names the run folder")
    parser.add_argument("-n", "--name", default=None, help="default exp name, e.g. yolox-s")
    parser.add_argument("-f", "--exp_file", default=None, help="exp file describing the model")
    parser.add_argument("-c", "--ckpt", default=None,
                        help="checkpoint (default: <output_dir>/<exp_name>/best_ckpt.pth)")
    parser.add_argument("opts", nargs=overrides_nargs, help="exp overrides as 'key value' pairs")
