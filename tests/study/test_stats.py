"""The Student-t quantile against closed forms and published table values; paired intervals and verdicts."""

import math

import pytest

from yolox.study.stats import (
    VERDICT_HELPS,
    VERDICT_HURTS,
    VERDICT_NO_PAIRS,
    VERDICT_SINGLE_SEED,
    VERDICT_UNCLEAR,
    paired_comparison,
    regularized_incomplete_beta,
    sample_std,
    student_t_cdf,
    student_t_quantile,
)

# Two-sided 95% critical values t(0.975, df) from standard tables.
T_TABLE_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281, 20: 2.0860, 30: 2.0423}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_975.items()))
def test_quantile_matches_the_t_table(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_quantile_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(p):
    assert student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert student_t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)


def test_quantile_tends_to_the_normal_one_and_is_symmetric():
    assert student_t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert student_t_quantile(0.025, 7) == pytest.approx(-student_t_quantile(0.975, 7))
    assert student_t_cdf(student_t_quantile(0.8, 3.5), 3.5) == pytest.approx(0.8, abs=1e-10)


def test_incomplete_beta_edges_and_a_known_value():
    assert regularized_incomplete_beta(2, 3, 0.0) == 0.0
    assert regularized_incomplete_beta(2, 3, 1.0) == 1.0
    # I_x(1, b) = 1 - (1 - x)^b
    assert regularized_incomplete_beta(1, 3, 0.4) == pytest.approx(1 - 0.6**3, rel=1e-12)


def test_quantile_rejects_probabilities_outside_the_open_interval():
    with pytest.raises(ValueError, match="between 0 and 1"):
        student_t_quantile(1.0, 3)


def test_paired_interval_by_hand():
    differences = {0: 3.0, 1: 1.0, 2: 4.0}
    result = paired_comparison(differences)
    half_width = 4.302653 * sample_std([3.0, 1.0, 4.0]) / math.sqrt(3)
    assert result.mean_difference == pytest.approx(8 / 3)
    assert (result.ci_low, result.ci_high) == pytest.approx((8 / 3 - half_width, 8 / 3 + half_width), abs=1e-5)
    assert result.verdict == VERDICT_UNCLEAR


def test_verdicts():
    assert paired_comparison({0: 1.0, 1: 1.2, 2: 0.9}).verdict == VERDICT_HELPS
    assert paired_comparison({0: -1.0, 1: -1.2, 2: -0.9}).verdict == VERDICT_HURTS
    assert paired_comparison({0: 0.5}).verdict == VERDICT_SINGLE_SEED
    assert paired_comparison({}).verdict == VERDICT_NO_PAIRS
