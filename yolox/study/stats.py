"""Statistics of a paired multi-seed study, as pure functions over recorded per-seed values.

Every distribution comes from ``scipy.stats``: the Student t for the paired interval and test, the
noncentral t for power, ``permutation_test`` for the exact sign-flip p-value. The functions take the
values in whatever unit the caller stores (the study stores AP as a fraction); only the verdict words
are written by :func:`verdict_words`, which takes the margin as the caller wants it printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

CORRECTIONS = ("holm", "bonferroni", "none")
ALPHA = 0.05
POWER = 0.8
SIGN_FLIP_EXACT_UP_TO = 16
SIGN_FLIP_RESAMPLES = 100_000
MAX_SEEDS_SEARCHED = 10_000

VERDICT_HELPS_BY_MARGIN = "helps_by_margin"
VERDICT_HELPS = "helps"
VERDICT_EQUIVALENT = "equivalent"
VERDICT_HURTS = "hurts"
VERDICT_INCONCLUSIVE = "inconclusive"
VERDICT_ZERO_VARIANCE = "zero_variance"
VERDICT_NOT_COMPUTABLE = "not_computable"
VERDICT_SINGLE_SEED = "single_seed"
VERDICT_NO_PAIRS = "no_pairs"


def verdict_words(code: str, margin: float, unit: str = "AP points") -> str:
    """The printed wording of a verdict code; ``margin`` is given in the unit the words show."""
    words = {
        VERDICT_HELPS_BY_MARGIN: f"helps by more than {margin:g} {unit}",
        VERDICT_HELPS: "helps",
        VERDICT_EQUIVALENT: f"equivalent within +-{margin:g} {unit}",
        VERDICT_HURTS: "hurts",
        VERDICT_INCONCLUSIVE: "inconclusive",
        VERDICT_ZERO_VARIANCE: "no spread: every seed gave the same difference, no interval can be formed",
        VERDICT_NOT_COMPUTABLE: "not computable: a difference is NaN",
        VERDICT_SINGLE_SEED: "single seed: run more seeds to tell",
        VERDICT_NO_PAIRS: "no paired seeds finished yet",
    }
    return words[code]


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with n - 1 in the denominator (NaN for fewer than two values)."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else float("nan")


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """The two-sided Student-t interval of the mean of ``values`` (at least two) at ``confidence``."""
    count = len(values)
    centre = float(np.mean(values))
    half_width = stats.t.ppf(0.5 + confidence / 2.0, count - 1) * sample_std(values) / math.sqrt(count)
    return centre - half_width, centre + half_width


def t_test_p(values: Sequence[float]) -> float:
    """Two-sided p-value of the one-sample t test of mean 0 (the paired t test on differences)."""
    return float(stats.ttest_1samp(np.asarray(values, dtype=float), 0.0).pvalue)


@dataclass(frozen=True)
class SignFlip:
    """The sign-flip permutation test of mean 0: its p, the smallest p ``n`` values can give, exact or not."""

    p: float
    min_p: float
    exact: bool


def sign_flip_test(values: Sequence[float], seed: int = 0) -> SignFlip:
    """Two-sided sign-flip p: all 2^n sign patterns up to n = 16, else 100,000 random ones (``seed``)."""
    data = np.asarray(values, dtype=float)
    count = len(data)
    exact = count <= SIGN_FLIP_EXACT_UP_TO
    resamples = 2**count if exact else SIGN_FLIP_RESAMPLES
    result = stats.permutation_test((data,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    # Two of the 2^n patterns (the observed one and its negation) are always at least as extreme.
    min_p = 2.0 / 2**count if exact else 1.0 / (SIGN_FLIP_RESAMPLES + 1)
    return SignFlip(float(result.pvalue), min(1.0, min_p), exact)


def adjust_p(pvalues: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values: ``holm`` (step-down), ``bonferroni``, ``bh`` (Benjamini-Hochberg) or ``none``."""
    ps = np.asarray(pvalues, dtype=float)
    count = len(ps)
    if method == "none" or count == 0:
        return ps.tolist()
    if method == "bonferroni":
        return np.minimum(1.0, ps * count).tolist()
    if method == "bh":
        return stats.false_discovery_control(ps, method="bh").tolist()
    if method == "holm":
        order = np.argsort(ps, kind="stable")
        stepped = np.maximum.accumulate(ps[order] * (count - np.arange(count)))
        adjusted = np.empty(count)
        adjusted[order] = np.minimum(1.0, stepped)
        return adjusted.tolist()
    raise ValueError(f"unknown correction {method!r}: use one of holm, bonferroni, bh, none")


def interval_alphas(pvalues: Sequence[float], method: str, alpha: float = ALPHA) -> list[float]:
    """The error rate of each comparison's interval, so that interval and adjusted p always agree.

    ``none``: alpha; ``bonferroni``: alpha / m (simultaneous intervals). ``holm``: the level of the
    comparison's step, alpha / (m - j + 1) for the j-th smallest p while every smaller p was rejected, and the
    level of the first step that failed for all the rest, so an interval excludes 0 exactly when Holm rejects.
    """
    count = len(pvalues)
    if method == "none":
        return [alpha] * count
    if method == "bonferroni":
        return [alpha / count] * count
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}: use one of {', '.join(CORRECTIONS)}")
    order = sorted(range(count), key=lambda index: pvalues[index])
    levels = [alpha] * count
    failed_level = None
    for step, index in enumerate(order):
        level = alpha / (count - step)
        if failed_level is None and not pvalues[index] <= level:
            failed_level = level
        levels[index] = level if failed_level is None else failed_level
    return levels


def tost_p(values: Sequence[float], margin: float) -> float:
    """p of the two one-sided t tests of equivalence within (-margin, +margin): the larger of the two."""
    data = np.asarray(values, dtype=float)
    above = stats.ttest_1samp(data, -margin, alternative="greater").pvalue
    below = stats.ttest_1samp(data, margin, alternative="less").pvalue
    return float(max(above, below))


def paired_power(effect: float, sd: float, count: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t test at ``alpha`` for a true mean difference ``effect`` (noncentral t)."""
    if count < 2:
        return float("nan")
    df = count - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    noncentrality = abs(effect) / sd * math.sqrt(count)
    # The far tail as the upper tail of the mirrored distribution: scipy's nct.cdf there can underflow to NaN.
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality))


def minimum_detectable_effect(sd: float, count: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The true mean difference that ``count`` seeds find with probability ``power`` (NaN below 2 seeds)."""
    if count < 2 or not sd > 0 or not math.isfinite(sd):
        return float("nan")
    upper = sd
    while paired_power(upper, sd, count, alpha) < power:
        upper *= 2.0
    return float(optimize.brentq(lambda effect: paired_power(effect, sd, count, alpha) - power, 0.0, upper, xtol=1e-12 * sd))


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest seeds (at least 2) whose paired t test finds ``effect`` with ``power``; None if none up to 10,000."""
    if not sd > 0 or not math.isfinite(sd) or effect == 0:
        return None
    for count in range(2, MAX_SEEDS_SEARCHED + 1):
        if paired_power(abs(effect), sd, count, alpha) >= power:
            return count
    return None


def correlation(first: Sequence[float], second: Sequence[float]) -> float:
    """Pearson correlation across seeds (NaN for fewer than 3 seeds or a constant series)."""
    if len(first) < 3 or np.std(first) == 0 or np.std(second) == 0:
        return float("nan")
    return float(stats.pearsonr(first, second).statistic)


def has_no_spread(values: Sequence[float]) -> bool:
    """True when every value is the same (up to rounding of the last bits)."""
    data = np.asarray(values, dtype=float)
    return bool(np.ptp(data) <= 1e-12 * max(1.0, float(np.max(np.abs(data)))))


def decide(values: Sequence[float], interval: tuple[float, float] | None, equivalence: tuple[float, float] | None,
           margin: float) -> str:
    """The verdict code of a comparison from its interval, its equivalence interval and the margin (0 = off)."""
    if len(values) == 0:
        return VERDICT_NO_PAIRS
    if any(math.isnan(value) for value in values):
        return VERDICT_NOT_COMPUTABLE
    if len(values) == 1:
        return VERDICT_SINGLE_SEED
    if has_no_spread(values) or interval is None:
        return VERDICT_ZERO_VARIANCE
    low, high = interval
    if margin > 0 and low > margin:
        return VERDICT_HELPS_BY_MARGIN
    if low > 0:
        return VERDICT_HELPS
    if high < 0:
        return VERDICT_HURTS
    if margin > 0 and equivalence is not None and -margin < equivalence[0] and equivalence[1] < margin:
        return VERDICT_EQUIVALENT
    return VERDICT_INCONCLUSIVE


@dataclass
class Comparison:
    """One variant against the baseline over the seeds both have, with every figure of the report."""

    variant: str
    seeds: list[int]
    variant_values: list[float]
    baseline_values: list[float]
    differences: list[float]
    mean: float | None
    sd: float | None
    correlation: float | None
    p: float | None
    p_adjusted: float | None
    alpha: float
    ci_low: float | None
    ci_high: float | None
    equivalence_low: float | None
    equivalence_high: float | None
    tost_p: float | None
    sign_flip_p: float | None
    sign_flip_min_p: float | None
    sign_flip_exact: bool | None
    mde: float | None
    seeds_needed: int | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (NaN becomes None)."""
        return {key: _finite_or_none(value) for key, value in asdict(self).items()}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def compare_to_baseline(pairs: Mapping[str, Mapping[int, tuple[float, float]]], correction: str = "holm",
                        alpha: float = ALPHA, margin: float = 0.0, effect: float | None = None) -> list[Comparison]:
    """Every variant's paired comparison; ``pairs[variant][seed] = (variant value, baseline value)``.

    The correction runs over the comparisons that have an interval (two or more finite, not all equal,
    differences). ``margin`` (same unit as the values) turns on *helps by more than* and *equivalent*;
    ``effect`` asks for the seeds that effect needs at this correction's level.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    rows = []
    for name, by_seed in pairs.items():
        seeds = sorted(by_seed)
        variant_values = [float(by_seed[seed][0]) for seed in seeds]
        baseline_values = [float(by_seed[seed][1]) for seed in seeds]
        differences = [value - base for value, base in zip(variant_values, baseline_values)]
        testable = len(differences) >= 2 and not any(math.isnan(d) for d in differences) and not has_no_spread(differences)
        rows.append((name, seeds, variant_values, baseline_values, differences, testable))
    tested = [row for row in rows if row[5]]
    raw_p = [t_test_p(row[4]) for row in tested]
    adjusted = dict(zip((row[0] for row in tested), adjust_p(raw_p, correction)))
    levels = dict(zip((row[0] for row in tested), interval_alphas(raw_p, correction, alpha)))
    p_of = dict(zip((row[0] for row in tested), raw_p))
    comparisons = []
    for name, seeds, variant_values, baseline_values, differences, testable in rows:
        level = levels.get(name, alpha / max(1, len(tested)) if correction != "none" else alpha)
        finite = len(differences) >= 2 and not any(math.isnan(d) for d in differences)
        interval = t_interval(differences, 1.0 - level) if testable else None
        equivalence = t_interval(differences, 1.0 - 2.0 * level) if testable and margin > 0 else None
        sd = sample_std(differences) if finite else float("nan")
        flip = sign_flip_test(differences) if finite else None
        comparisons.append(Comparison(
            variant=name, seeds=seeds, variant_values=variant_values, baseline_values=baseline_values,
            differences=differences, mean=float(np.mean(differences)) if differences else None, sd=sd,
            correlation=correlation(variant_values, baseline_values) if finite else float("nan"),
            p=p_of.get(name), p_adjusted=adjusted.get(name), alpha=level,
            ci_low=interval[0] if interval else None, ci_high=interval[1] if interval else None,
            equivalence_low=equivalence[0] if equivalence else None,
            equivalence_high=equivalence[1] if equivalence else None,
            tost_p=tost_p(differences, margin) if testable and margin > 0 else None,
            sign_flip_p=flip.p if flip else None, sign_flip_min_p=flip.min_p if flip else None,
            sign_flip_exact=flip.exact if flip else None,
            mde=minimum_detectable_effect(sd, len(differences), level) if testable else None,
            seeds_needed=seeds_needed(effect, sd, level) if testable and effect else None,
            verdict=decide(differences, interval, equivalence, margin)))
    return comparisons


def benjamini_hochberg_intervals(differences: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> dict[str, dict]:
    """Exploratory paired t-intervals for many metrics under Benjamini-Hochberg control of the false discovery rate.

    Each testable metric gets its raw and BH-adjusted p and a t-interval at the false-coverage-adjusted level
    alpha x R / m (Benjamini and Yekutieli, 2005; R = number of BH discoveries, at least 1).
    """
    testable = {name: list(values) for name, values in differences.items()
                if len(values) >= 2 and not any(math.isnan(v) for v in values) and not has_no_spread(values)}
    names = list(testable)
    raw = [t_test_p(testable[name]) for name in names]
    adjusted = adjust_p(raw, "bh")
    discoveries = max(1, sum(p <= alpha for p in adjusted))
    level = alpha * discoveries / max(1, len(names))
    results = {}
    for name, values in differences.items():
        values = list(values)
        entry: dict[str, Any] = {"mean": float(np.mean(values)) if values else None, "n": len(values)}
        if name in testable:
            index = names.index(name)
            low, high = t_interval(values, 1.0 - level)
            entry.update(p=raw[index], p_adjusted=adjusted[index], alpha=level, ci_low=low, ci_high=high,
                         discovery=adjusted[index] <= alpha)
        results[name] = {key: _finite_or_none(value) for key, value in entry.items()}
    return results
