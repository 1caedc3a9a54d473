"""The study's statistics against independent computations: statsmodels, t tables, enumeration by hand."""

import itertools
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW, ttost_paired

from yolox.study.stats import (
    VERDICT_EQUIVALENT,
    VERDICT_HELPS,
    VERDICT_HELPS_BY_MARGIN,
    VERDICT_HURTS,
    VERDICT_INCONCLUSIVE,
    VERDICT_NO_PAIRS,
    VERDICT_NOT_COMPUTABLE,
    VERDICT_SINGLE_SEED,
    VERDICT_ZERO_VARIANCE,
    adjust_p,
    benjamini_hochberg_intervals,
    compare_to_baseline,
    decide,
    interval_alphas,
    minimum_detectable_effect,
    paired_power,
    seeds_needed,
    sign_flip_test,
    t_interval,
    t_test_p,
    tost_p,
    verdict_words,
)


def test_t_interval_against_the_table_and_statsmodels():
    values = [3.0, 1.0, 4.0]
    half_width = 4.302653 * np.std(values, ddof=1) / math.sqrt(3)  # t(0.975, 2) from the table
    assert t_interval(values, 0.95) == pytest.approx((8 / 3 - half_width, 8 / 3 + half_width), abs=1e-5)
    rng = np.random.default_rng(1)
    for count in (2, 5, 12):
        sample = rng.normal(0.3, 1.0, count).tolist()
        assert t_interval(sample, 0.9) == pytest.approx(DescrStatsW(sample).tconfint_mean(alpha=0.1), rel=1e-10)
        assert t_test_p(sample) == pytest.approx(DescrStatsW(sample).ttest_mean(0.0)[1], rel=1e-10)


def _sign_flip_by_enumeration(values):
    observed = abs(sum(values))
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    extreme = sum(abs(sum(sign * value for sign, value in zip(signs, values))) >= observed - 1e-12 for signs in patterns)
    return extreme / len(patterns)


@pytest.mark.parametrize("values", [[0.5, 1.0, 2.0], [0.5, -1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0],
                                    [0.3, -0.1, 0.7, 0.2, -0.4], [1.0, -1.0, 1.0, -1.0, 0.5]])
def test_sign_flip_p_equals_the_enumeration_of_all_sign_patterns(values):
    result = sign_flip_test(values)
    assert result.exact and result.min_p == pytest.approx(2 / 2 ** len(values))
    assert result.p == pytest.approx(_sign_flip_by_enumeration(values))


def test_sign_flip_smallest_p_and_the_random_form_beyond_sixteen_seeds():
    # Three positive differences: only the observed pattern and its negation are as extreme, 2 / 8.
    assert sign_flip_test([1.0, 2.0, 3.0]).p == pytest.approx(0.25)
    many = sign_flip_test(np.linspace(0.5, 2.0, 18).tolist())
    assert not many.exact and many.p < 0.001 and many.min_p == pytest.approx(1 / 100_001)


P_SET = [0.01, 0.04, 0.03, 0.005, 0.20]


@pytest.mark.parametrize("method,statsmodels_name", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")])
def test_adjusted_p_values_against_statsmodels(method, statsmodels_name):
    assert adjust_p(P_SET, method) == pytest.approx(multipletests(P_SET, method=statsmodels_name)[1].tolist())


def test_holm_by_hand():
    # Sorted 0.005, 0.01, 0.03, 0.04, 0.20 times 5, 4, 3, 2, 1 = 0.025, 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.20.
    assert adjust_p(P_SET, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.20])
    assert adjust_p(P_SET, "none") == P_SET


def test_holm_interval_levels_agree_with_the_adjusted_p_values():
    rng = np.random.default_rng(3)
    for _ in range(200):
        pvalues = (rng.uniform(0, 0.1, 4) ** rng.uniform(0.5, 2)).tolist()
        levels = interval_alphas(pvalues, "holm")
        rejected = [p <= 0.05 for p in adjust_p(pvalues, "holm")]
        assert [p <= level for p, level in zip(pvalues, levels)] == rejected
    assert interval_alphas(P_SET, "holm") == pytest.approx([0.05 / 4, 0.05 / 3, 0.05 / 3, 0.05 / 5, 0.05 / 3])
    assert interval_alphas(P_SET, "bonferroni") == pytest.approx([0.01] * 5)


def _values_with_90_interval(centre, half_width, count=4):
    """Values whose 90% t-interval of the mean is exactly centre +- half_width."""
    base = np.array([-1.5, -0.5, 0.5, 1.5])[:count]
    from scipy import stats

    scale = half_width / (stats.t.ppf(0.95, count - 1) * np.std(base, ddof=1) / math.sqrt(count))
    return (centre + scale * base).tolist()


def test_tost_at_the_margin_boundaries_against_statsmodels():
    values = _values_with_90_interval(0.1, 0.2)  # 90% interval (-0.1, 0.3)
    assert t_interval(values, 0.90) == pytest.approx((-0.1, 0.3))
    for margin in (0.2999, 0.3, 0.3001, 0.5):
        expected = ttost_paired(np.array(values), np.zeros(4), -margin, margin)[0]
        assert tost_p(values, margin) == pytest.approx(expected, rel=1e-9)
    assert tost_p(values, 0.3) == pytest.approx(0.05, rel=1e-9)  # the interval's end on the margin: p = alpha
    interval = t_interval(values, 0.95)
    equivalence = t_interval(values, 0.90)
    assert decide(values, interval, equivalence, margin=0.3001) == VERDICT_EQUIVALENT
    assert decide(values, interval, equivalence, margin=0.3) == VERDICT_INCONCLUSIVE  # open interval (-M, +M)
    assert decide(values, interval, equivalence, margin=0.2999) == VERDICT_INCONCLUSIVE
    assert decide(values, interval, equivalence, margin=0.0) == VERDICT_INCONCLUSIVE


def test_helps_by_margin_helps_and_hurts_at_the_boundaries():
    values = [1.0, 1.2, 0.9]
    low, high = t_interval(values, 0.95)
    assert decide(values, (low, high), None, margin=low - 1e-9) == VERDICT_HELPS_BY_MARGIN
    assert decide(values, (low, high), None, margin=low + 1e-9) == VERDICT_HELPS
    assert decide([-v for v in values], (-high, -low), None, margin=0.0) == VERDICT_HURTS
    assert verdict_words(VERDICT_HELPS_BY_MARGIN, 0.3) == "helps by more than 0.3 AP points"
    assert verdict_words(VERDICT_EQUIVALENT, 0.3) == "equivalent within +-0.3 AP points"


def test_degenerate_differences_get_their_own_words():
    assert decide([0.2, 0.2, 0.2], None, None, 0.0) == VERDICT_ZERO_VARIANCE
    assert decide([0.2, float("nan"), 0.1], None, None, 0.0) == VERDICT_NOT_COMPUTABLE
    assert decide([0.5], None, None, 0.0) == VERDICT_SINGLE_SEED
    assert decide([], None, None, 0.0) == VERDICT_NO_PAIRS
    rows = {row.variant: row for row in compare_to_baseline(
        {"flat": {0: (0.3, 0.1), 1: (0.4, 0.2), 2: (0.5, 0.3)}, "broken": {0: (float("nan"), 0.1), 1: (0.3, 0.2)},
         "real": {0: (0.3, 0.1), 1: (0.35, 0.2), 2: (0.6, 0.3)}})}
    assert rows["flat"].verdict == VERDICT_ZERO_VARIANCE and rows["flat"].ci_low is None and rows["flat"].p is None
    assert rows["broken"].verdict == VERDICT_NOT_COMPUTABLE and rows["broken"].to_dict()["mean"] is None
    # Only "real" is tested, so Holm over one comparison is the plain test.
    assert rows["real"].p_adjusted == pytest.approx(rows["real"].p) and rows["real"].alpha == pytest.approx(0.05)


@pytest.mark.parametrize("effect,sd,count,alpha", [(0.5, 0.2 * math.sqrt(2), 3, 0.05), (0.3, 0.4, 8, 0.05),
                                                   (1.0, 0.7, 5, 0.025), (0.2, 0.5, 30, 0.01)])
def test_power_against_statsmodels_noncentral_t(effect, sd, count, alpha):
    expected = TTestPower().power(effect_size=effect / sd, nobs=count, alpha=alpha, alternative="two-sided")
    assert paired_power(effect, sd, count, alpha) == pytest.approx(expected, rel=1e-8)


def test_three_seeds_find_half_a_point_with_seed_sd_0_2_about_40_percent_of_the_time():
    assert paired_power(0.5, 0.2 * math.sqrt(2), 3) == pytest.approx(0.40, abs=0.02)


@pytest.mark.parametrize("effect,sd,alpha", [(0.5, 0.28, 0.05), (0.3, 0.5, 0.05), (0.5, 0.28, 0.0125), (2.0, 0.5, 0.05)])
def test_seeds_needed_and_mde_against_statsmodels(effect, sd, alpha):
    solved = TTestPower().solve_power(effect_size=effect / sd, alpha=alpha, power=0.8, alternative="two-sided")
    assert seeds_needed(effect, sd, alpha) == max(2, math.ceil(solved - 1e-9))
    count = seeds_needed(effect, sd, alpha)
    expected = TTestPower().solve_power(nobs=count, alpha=alpha, power=0.8, alternative="two-sided") * sd
    assert minimum_detectable_effect(sd, count, alpha) == pytest.approx(expected, rel=1e-6)
    assert minimum_detectable_effect(sd, count, alpha) <= effect
    assert seeds_needed(effect, 0.0) is None and math.isnan(minimum_detectable_effect(sd, 1))


def test_compare_to_baseline_corrects_over_the_tested_comparisons():
    pairs = {"a": {0: (1.0, 0.0), 1: (1.3, 0.1), 2: (1.1, 0.05)},
             "b": {0: (0.2, 0.0), 1: (0.0, 0.1), 2: (0.4, 0.05)},
             "c": {0: (-0.5, 0.0), 1: (-0.3, 0.1), 2: (-0.6, 0.05)}}
    rows = compare_to_baseline(pairs, correction="holm")
    raw = [t_test_p([v - b for v, b in by_seed.values()]) for by_seed in pairs.values()]
    assert [row.p for row in rows] == pytest.approx(raw)
    assert [row.p_adjusted for row in rows] == pytest.approx(multipletests(raw, method="holm")[1].tolist())
    for row in rows:
        low, high = t_interval(row.differences, 1 - row.alpha)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
        assert (row.ci_low > 0 or row.ci_high < 0) == (row.p_adjusted <= 0.05)
    bonferroni = compare_to_baseline(pairs, correction="bonferroni")
    assert all(row.alpha == pytest.approx(0.05 / 3) for row in bonferroni)
    assert rows[0].correlation == pytest.approx(np.corrcoef([1.0, 1.3, 1.1], [0.0, 0.1, 0.05])[0, 1])
    with pytest.raises(ValueError, match="holm"):
        compare_to_baseline(pairs, correction="sidak")


def test_benjamini_hochberg_intervals_use_the_false_coverage_level():
    differences = {"AP50": [1.0, 1.2, 1.1], "AP75": [0.1, -0.3, 0.4], "APs": [0.5, 0.5, 0.5]}
    result = benjamini_hochberg_intervals(differences)
    raw = [t_test_p(differences["AP50"]), t_test_p(differences["AP75"])]
    adjusted = multipletests(raw, method="fdr_bh")[1]
    assert result["AP50"]["p_adjusted"] == pytest.approx(adjusted[0])
    discoveries = max(1, int((adjusted <= 0.05).sum()))
    level = 0.05 * discoveries / 2
    assert (result["AP75"]["ci_low"], result["AP75"]["ci_high"]) == pytest.approx(t_interval(differences["AP75"], 1 - level))
    assert "ci_low" not in result["APs"] and result["APs"]["mean"] == pytest.approx(0.5)
