"""Statistics of a paired study: Student-t quantiles, paired differences, confidence intervals, verdicts.

The t quantile is computed here (no scipy): the t distribution's CDF through the regularised incomplete
beta function (evaluated by its continued fraction), inverted by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

VERDICT_HELPS = "helps"
VERDICT_HURTS = "hurts"
VERDICT_UNCLEAR = "no detectable difference at this budget"
VERDICT_SINGLE_SEED = "single seed: run more seeds to tell"
VERDICT_NO_PAIRS = "no paired seeds finished yet"

_CF_MAX_TERMS = 300
_CF_EPSILON = 1e-15
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz evaluation)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _CF_MAX_TERMS + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _CF_EPSILON:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast for x below the mean a / (a + b); use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), to about 1e-10."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must lie strictly between 0 and 1, got {p}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean (NaN for no values)."""
    return sum(values) / len(values) if values else float("nan")


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with n - 1 in the denominator (NaN for fewer than two values)."""
    if len(values) < 2:
        return float("nan")
    centre = mean(values)
    return math.sqrt(sum((value - centre) ** 2 for value in values) / (len(values) - 1))


@dataclass
class PairedComparison:
    """A variant against the baseline over the seeds both finished."""

    seeds: list[int]
    differences: list[float]
    mean_difference: float
    ci_low: float
    ci_high: float
    verdict: str


def paired_comparison(differences_by_seed: dict[int, float], confidence: float = 0.95) -> PairedComparison:
    """Mean of the per-seed differences, its t-interval and the verdict the interval supports."""
    seeds = sorted(differences_by_seed)
    differences = [differences_by_seed[seed] for seed in seeds]
    count = len(differences)
    centre = mean(differences)
    if count == 0:
        return PairedComparison(seeds, differences, centre, float("nan"), float("nan"), VERDICT_NO_PAIRS)
    if count == 1:
        return PairedComparison(seeds, differences, centre, float("nan"), float("nan"), VERDICT_SINGLE_SEED)
    half_width = student_t_quantile(0.5 + confidence / 2.0, count - 1) * sample_std(differences) / math.sqrt(count)
    low, high = centre - half_width, centre + half_width
    verdict = VERDICT_HELPS if low > 0 else VERDICT_HURTS if high < 0 else VERDICT_UNCLEAR
    return PairedComparison(seeds, differences, centre, low, high, verdict)
