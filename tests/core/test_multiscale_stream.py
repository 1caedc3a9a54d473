"""The multiscale size of a seeded run comes from (seed, iteration), never from the process-global stream."""

import random

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer
from yolox.core.resume import next_input_size
from yolox.exp import get_exp


class SizeRecordingTrainer(Trainer):
    """Records the input size of every iteration; draws from the global ``random`` before each one."""

    def before_train(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        super().before_train()

    def train_one_iter(self) -> None:
        random.random()  # another user of the process-global stream (a library, a callback)
        self.sizes.append(self.input_size)
        super().train_one_iter()


def test_the_trainer_draws_the_sizes_from_the_seed_and_the_iteration(make_exp_file) -> None:
    # Batch 1: twelve iterations, so the size drawn after iteration 10 is used by iterations 11 and 12.
    args = make_parser().parse_args(["-f", str(make_exp_file(max_epoch=1)), "-b", "1", "--device", "cpu",
                                     "warmup_epochs", "0", "no_aug_epochs", "0", "random_size", "1,9",
                                     "eval_interval", "5"])
    exp = build_exp(args)
    trainer = SizeRecordingTrainer(exp, args)
    trainer.exp.get_evaluator = lambda **kwargs: None
    trainer.train()
    keyed = exp.random_resize(None, 0, 0, False, iteration=10)
    assert trainer.sizes == [(64, 64)] * 10 + [keyed] * 2


class OfficialStyleExp(type(get_exp(exp_name="yolox-nano"))):
    """An exp file that overrides ``random_resize`` with the official signature (no iteration)."""

    def random_resize(self, data_loader, epoch, rank, is_distributed):
        return (96, 128)


def test_an_official_style_random_resize_is_still_called() -> None:
    seeded = get_exp(exp_name="yolox-nano")
    seeded.seed = 7
    assert next_input_size(seeded, None, 0, 0, False, 20) == seeded.random_resize(None, 0, 0, False, iteration=20)
    assert next_input_size(OfficialStyleExp(), None, 0, 0, False, 20) == (96, 128)
