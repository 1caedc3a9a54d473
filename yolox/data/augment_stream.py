"""Who owns the randomness of the training data: one generator per sample, one per iteration.

Every random draw of the training pipeline comes from a ``random.Random`` seeded from (seed, epoch, sample
index), for the augmentation of one sample, or from (seed, iteration), for the multiscale size; never from
a process-global generator. So the stream does not depend on how many loader workers or processes share
the work, nor on where a run was interrupted and resumed. The draws themselves (``uniform``, ``randint``,
``choice``, ``random``) are those of the official YOLOX; only who owns the generator changes.
"""

import hashlib
import random
import secrets


def stream_seed(*parts: int | str) -> int:
    """A 64-bit seed that depends on every part (hashed, so neighbouring keys give unrelated streams)."""
    text = ":".join(str(part) for part in parts).encode("ascii")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def sample_draw_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of the augmentation draws of sample ``index`` in pass ``epoch`` over the data."""
    return stream_seed("sample", seed, epoch, index)


def sample_rng(draw_seed: int) -> random.Random:
    """The generator of one sample's draws (mosaic, mixup, affine, HSV, flip), from ``sample_draw_seed``."""
    return random.Random(draw_seed)


def iteration_rng(seed: int, iteration: int) -> random.Random:
    """The generator of the draws made once per training iteration (the multiscale input size)."""
    return random.Random(stream_seed("iteration", seed, iteration))


def fresh_augment_seed() -> int:
    """An augmentation seed for an unseeded run: different for every run, as the official YOLOX's streams are."""
    return secrets.randbits(63)
