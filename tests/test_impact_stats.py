"""Tests for bridge.impact_stats: hand-computed examples, simulations and properties.

Reference values in comments were worked by hand; the t quantiles quoted to more digits were
cross-checked against scipy.stats.t.ppf outside this project (scipy is not a dependency).
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import impact_stats
from bridge.impact_stats import (
    Estimate,
    difference_in_differences,
    kaplan_meier,
    mean_and_sd,
    minimum_detectable_effect,
    pre_trend,
    student_t_quantile,
    welch_difference,
)

# --------------------------------------------------------------------------- t quantiles


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706205),
        (0.975, 2, 4.302653),
        (0.975, 5, 2.570582),
        (0.975, 10, 2.228139),
        (0.975, 30, 2.042272),
        (0.975, 1e6, 1.959966),
        (0.8, 10, 0.879058),
    ],
)
def test_t_quantile_table(p: float, df: float, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        # Fractional df (Welch) and the far tail, from scipy.stats.t.ppf.
        (0.975, 3.532846715328467, 2.9274053061524556),
        (0.975, 27 / 7, 2.817473753199967),
        (0.975, 1e6, 1.959966356814107),
    ],
)
def test_t_quantile_many_digits(p: float, df: float, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, rel=1e-11)


def test_t_quantile_symmetry_centre_and_limits() -> None:
    assert student_t_quantile(0.5, 3.0) == 0.0
    # 1 - 0.975 is not exactly 0.025 in binary, hence approx.
    assert student_t_quantile(0.025, 7.5) == pytest.approx(-student_t_quantile(0.975, 7.5), rel=1e-13)
    assert student_t_quantile(0.0, 4.0) == -math.inf
    assert student_t_quantile(1.0, 4.0) == math.inf
    assert student_t_quantile(0.975, math.inf) == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-15)
    # Cauchy (df = 1) has a closed form: tan(pi * (p - 1/2)) = 1 / tan(pi * (1 - p)), the
    # second form keeping its precision in the far tail.
    for p in (0.6, 0.9, 0.999, 1 - 1e-9):
        assert student_t_quantile(p, 1.0) == pytest.approx(1 / math.tan(math.pi * (1 - p)), rel=1e-12)
    # df = 2 too: t = (2p - 1) * sqrt(2 / (4p(1 - p))).
    for p in (0.6, 0.9, 0.999):
        closed = (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
        assert student_t_quantile(p, 2.0) == pytest.approx(closed, rel=1e-10)


@pytest.mark.parametrize(("p", "df"), [(1.5, 3.0), (-0.1, 3.0), (math.nan, 3.0), (0.9, 0.0), (0.9, -2.0)])
def test_t_quantile_rejects_bad_arguments(p: float, df: float) -> None:
    with pytest.raises(ValueError):
        student_t_quantile(p, df)


def test_t_quantile_series_agrees_with_incomplete_beta_at_switch() -> None:
    # Above 1e5 df the Cornish-Fisher series takes over; both routes must agree there.
    for df in (5e4, 1e5, 1e6):
        for p in (0.6, 0.8, 0.975, 1 - 1e-9):
            beta_route = impact_stats._upper_quantile(1 - p, df)
            series = impact_stats._cornish_fisher_quantile(p, df)
            assert beta_route == pytest.approx(series, rel=1e-11)


@settings(max_examples=60, deadline=None)
@given(
    p=st.floats(min_value=0.5001, max_value=1 - 1e-9),
    df=st.floats(min_value=0.3, max_value=5e4),
)
def test_t_quantile_inverts_the_tail(p: float, df: float) -> None:
    t = student_t_quantile(p, df)
    assert impact_stats._t_upper_tail(t, df) == pytest.approx(1 - p, rel=1e-9)
    # Heavier tails than the normal, and lighter as df grows.
    assert t >= NormalDist().inv_cdf(p) - 1e-12
    assert student_t_quantile(p, df * 2) <= t + 1e-12


# --------------------------------------------------------------------------- Welch


def test_welch_hand_computed() -> None:
    # treated [1,2,3,4,5]: mean 3, variance 10/4 = 2.5
    # control [2,4,6]:     mean 4, variance 8/2 = 4
    # effect = 3 - 4 = -1
    # SE^2 = 2.5/5 + 4/3 = 0.5 + 1.3333 = 1.8333, SE = 1.3540
    # df = 1.8333^2 / ((0.5^2)/4 + (1.3333^2)/2) = 3.3611 / (0.0625 + 0.8889) = 3.5328
    # t(0.975, 3.5328) = 2.92741 → half width 2.92741 * 1.35401 = 3.96373 → [-4.96373, 2.96373]
    est = welch_difference([1, 2, 3, 4, 5], [2, 4, 6])
    assert est is not None
    assert est.effect == -1.0
    assert est.df == pytest.approx(3.5328, abs=1e-4)
    se = math.sqrt(2.5 / 5 + 4 / 3)
    assert se == pytest.approx(1.3540, abs=1e-4)
    q = student_t_quantile(0.975, est.df)
    assert est.low == pytest.approx(-1 - q * se, rel=1e-12)
    assert est.high == pytest.approx(-1 + q * se, rel=1e-12)
    assert est.low == pytest.approx(-4.963725522186273, abs=1e-9)
    assert est.high == pytest.approx(2.963725522186273, abs=1e-9)
    assert (est.n_treated, est.n_control) == (5, 3)
    assert est.covers(0.0)
    assert not est.covers(3.0)


def test_welch_needs_two_per_group() -> None:
    assert welch_difference([1.0], [1.0, 2.0]) is None
    assert welch_difference([1.0, 2.0], []) is None


def test_welch_zero_variance() -> None:
    # Both groups constant: the interval collapses to the point, df = n1 + n2 - 2.
    est = welch_difference([2.0, 2.0, 2.0], [1.0, 1.0])
    assert est == Estimate(effect=1.0, low=1.0, high=1.0, df=3.0, n_treated=3, n_control=2)
    # One group constant: Welch df reduces to the other group's n - 1.
    est = welch_difference([5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    assert est is not None
    assert est.df == pytest.approx(2.0)
    assert est.low < est.effect < est.high


def test_welch_rejects_non_finite_and_bad_confidence() -> None:
    with pytest.raises(ValueError):
        welch_difference([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError):
        welch_difference([1.0, 2.0], [1.0, 2.0], confidence=1.0)


def test_wider_confidence_gives_wider_interval() -> None:
    narrow = welch_difference([1, 2, 3, 4, 5], [2, 4, 6], confidence=0.8)
    wide = welch_difference([1, 2, 3, 4, 5], [2, 4, 6], confidence=0.99)
    assert narrow is not None and wide is not None
    assert wide.low < narrow.low < narrow.high < wide.high


def test_mean_and_sd() -> None:
    assert mean_and_sd([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx((5.0, math.sqrt(32 / 7)))
    assert mean_and_sd([0.1, 0.1, 0.1]) == (0.1, 0.0)
    with pytest.raises(ValueError):
        mean_and_sd([1.0])


# --------------------------------------------------------------------------- DiD


def test_difference_in_differences_hand_computed() -> None:
    # treated changes: [13-10, 14-12, 18-14] = [3, 2, 4]: mean 3, variance 2/2 = 1
    # control changes: [11-10, 11-11, 10-9, 14-12] = [1, 0, 1, 2]: mean 1, variance 2/3
    # effect = 3 - 1 = 2
    # SE^2 = 1/3 + (2/3)/4 = 1/3 + 1/6 = 1/2
    # df = (1/2)^2 / ((1/3)^2/2 + (1/6)^2/3) = (1/4) / (1/18 + 1/108) = (1/4) / (7/108) = 27/7
    # t(0.975, 27/7) = 2.8174738 → 2 ± 2.8174738 * 0.7071068 = [0.0077452, 3.9922548]
    est = difference_in_differences([10, 12, 14], [13, 14, 18], [10, 11, 9, 12], [11, 11, 10, 14])
    assert est is not None
    assert est.effect == pytest.approx(2.0)
    assert est.df == pytest.approx(27 / 7)
    assert est.low == pytest.approx(0.007745203297190084, abs=1e-9)
    assert est.high == pytest.approx(3.99225479670281, abs=1e-9)
    assert (est.n_treated, est.n_control) == (3, 4)


def test_difference_in_differences_names_the_unpaired_group() -> None:
    with pytest.raises(ValueError, match="control"):
        difference_in_differences([1, 2], [1, 2], [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="treated"):
        difference_in_differences([1, 2], [1], [1, 2], [1, 2])


def test_difference_in_differences_ignores_stable_levels() -> None:
    # Shifting a person's two values (or a whole group's) by a constant changes nothing.
    base = difference_in_differences([1, 2, 3], [2, 4, 3], [0, 1, 1], [1, 1, 3])
    shifted = difference_in_differences([101, 2, 53], [102, 4, 53], [-50, 1, 1], [-49, 1, 3])
    assert base is not None and shifted is not None
    assert shifted.effect == pytest.approx(base.effect)
    assert shifted.low == pytest.approx(base.low)
    assert shifted.high == pytest.approx(base.high)


def _cohort(
    rng: random.Random, n: int, true_effect: float
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Synthetic before/after KPI for a treated and a control group.

    People differ in level (sd 1), the treated group starts 0.5 higher (selection), both
    groups drift up by 0.2, and each measurement has noise sd 1/sqrt(2), so a person's
    change has sd 1. Only the treated group gets ``true_effect``.
    """
    noise = 1 / math.sqrt(2)
    groups: list[tuple[list[float], list[float]]] = []
    for offset, effect in ((0.5, true_effect), (0.0, 0.0)):
        before: list[float] = []
        after: list[float] = []
        for _ in range(n):
            level = offset + rng.gauss(0.0, 1.0)
            before.append(level + rng.gauss(0.0, noise))
            after.append(level + 0.2 + effect + rng.gauss(0.0, noise))
        groups.append((before, after))
    (tb, ta), (cb, ca) = groups
    return tb, ta, cb, ca


def _simulate(true_effect: float, seeds: int = 200, n: int = 120) -> list[Estimate]:
    estimates = []
    for seed in range(seeds):
        est = difference_in_differences(*_cohort(random.Random(seed), n, true_effect))
        assert est is not None
        estimates.append(est)
    return estimates


def test_did_interval_covers_true_effect_in_simulation() -> None:
    estimates = _simulate(0.35)
    coverage = sum(e.covers(0.35) for e in estimates) / len(estimates)
    assert coverage >= 0.90
    # Unbiased: the average estimate is near the truth (SE of the average is about 0.009).
    assert sum(e.effect for e in estimates) / len(estimates) == pytest.approx(0.35, abs=0.03)
    # 0.35 is just under the MDE (about 0.363) for this design, so power is a bit under 80%.
    detected = sum(e.low > 0 for e in estimates) / len(estimates)
    assert 0.65 <= detected <= 0.90


def test_did_interval_covers_zero_without_effect() -> None:
    estimates = _simulate(0.0)
    coverage = sum(e.covers(0.0) for e in estimates) / len(estimates)
    assert coverage >= 0.90


# --------------------------------------------------------------------------- MDE


def test_minimum_detectable_effect() -> None:
    # SE = sqrt(1/120 + 1/120) = 0.1291, df = 238:
    # (t(0.975, 238) + t(0.8, 238)) * SE = (1.9700 + 0.8429) * 0.1291 = 0.3632
    mde = minimum_detectable_effect(1.0, 1.0, 120, 120)
    assert mde is not None
    assert 0.33 <= mde <= 0.40
    assert mde == pytest.approx(0.36317166580557686, abs=1e-9)
    more_power = minimum_detectable_effect(1.0, 1.0, 120, 120, power=0.9)
    bigger = minimum_detectable_effect(1.0, 1.0, 480, 480)
    assert more_power is not None and bigger is not None
    assert more_power > mde > bigger
    assert bigger == pytest.approx(mde / 2, rel=0.01)


def test_minimum_detectable_effect_edges() -> None:
    assert minimum_detectable_effect(1.0, 1.0, 1, 120) is None
    assert minimum_detectable_effect(0.0, 0.0, 10, 10) == 0.0
    with pytest.raises(ValueError):
        minimum_detectable_effect(-1.0, 1.0, 10, 10)
    with pytest.raises(ValueError):
        minimum_detectable_effect(1.0, 1.0, 10, 10, alpha=0.0)


# --------------------------------------------------------------------------- pre-trend


def test_pre_trend_hand_computed() -> None:
    # slopes over periods 0, 1, 2 (centred -1, 0, 1; Sxx = 2):
    # treated [1,2,3] → 1, [2,4,6] → 2, [0,1,2] → 1: mean 4/3, variance 1/3
    # control [1,1,1] → 0, [3,2,1] → -1, [0,0,3] → 3/2: mean 1/6, variance 19/12
    # effect = 4/3 - 1/6 = 7/6; SE^2 = (1/3)/3 + (19/12)/3 = 23/36
    # df = (23/36)^2 / (((1/9)^2 + (19/36)^2) / 2) = 1058/377 = 2.8064
    est = pre_trend([[1, 2, 3], [2, 4, 6], [0, 1, 2]], [[1, 1, 1], [3, 2, 1], [0, 0, 3]])
    assert est is not None
    assert est.effect == pytest.approx(7 / 6)
    assert est.df == pytest.approx(1058 / 377)
    assert est.low == pytest.approx(-1.4793121740451773, abs=1e-9)
    assert est.high == pytest.approx(3.8126455073785106, abs=1e-9)


def test_pre_trend_edges() -> None:
    assert pre_trend([[1.0], [2.0]], [[1.0], [3.0]]) is None
    assert pre_trend([], []) is None
    with pytest.raises(ValueError, match="same number of periods"):
        pre_trend([[1, 2], [1, 2, 3]], [[1, 2], [2, 3]])
    # Parallel groups with different levels: no difference in trend.
    est = pre_trend([[5, 6, 7], [9, 10, 11]], [[0, 1, 2], [1, 2, 3]])
    assert est is not None
    assert est.effect == pytest.approx(0.0)
    assert est.covers(0.0)


# --------------------------------------------------------------------------- Kaplan-Meier


def test_kaplan_meier_hand_computed_with_censoring() -> None:
    # durations [2, 3, 3, 5, 8, 9], reached [T, T, F, T, F, T]
    # t=2: at risk 6, 1 event → S = 5/6 = 0.8333
    # t=3: at risk 5 (the person censored at 3 still counts), 1 event → S = 5/6 * 4/5 = 2/3
    # t=5: at risk 3 (5, 8, 9), 1 event → S = 2/3 * 2/3 = 4/9 = 0.4444
    # t=8: censored only, no step
    # t=9: at risk 1, 1 event → S = 0
    # q1: first S <= 0.75 → 3; median: first S <= 0.5 → 5; q3: first S <= 0.25 → 9
    km = kaplan_meier([2, 3, 3, 5, 8, 9], [True, True, False, True, False, True])
    assert km.times == [2, 3, 5, 9]
    assert km.at_risk == [6, 5, 3, 1]
    assert km.events == [1, 1, 1, 1]
    assert km.survival == pytest.approx([5 / 6, 2 / 3, 4 / 9, 0.0])
    assert (km.q1, km.median, km.q3) == (3, 5, 9)


def test_kaplan_meier_order_ties_and_exact_levels() -> None:
    # Unsorted input; two events tied at t=1; S hits 0.5 and 0.25 exactly.
    km = kaplan_meier([4, 1, 3, 1, 2, 5, 6, 7], [True] * 8)
    assert km.times == [1, 2, 3, 4, 5, 6, 7]
    assert km.events[0] == 2
    assert km.survival[0] == pytest.approx(0.75)
    assert (km.q1, km.median, km.q3) == (1, 3, 5)
    even = kaplan_meier([1, 2, 3, 4], [True] * 4)
    assert (even.q1, even.median, even.q3) == (1, 2, 3)


def test_kaplan_meier_never_reached() -> None:
    km = kaplan_meier([3, 4, 5], [False, False, False])
    assert km.times == [] and km.survival == []
    assert (km.q1, km.median, km.q3) == (None, None, None)
    early = kaplan_meier([1, 10, 10, 10], [True, False, False, False])
    assert early.survival == [0.75]
    assert (early.q1, early.median, early.q3) == (1, None, None)
    assert kaplan_meier([], []).median is None


def test_kaplan_meier_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError):
        kaplan_meier([-1.0], [True])


# --------------------------------------------------------------------------- properties

kpi = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
groups = st.lists(kpi, min_size=2, max_size=25)


@settings(max_examples=100, deadline=None)
@given(treated=groups, control=groups, confidence=st.floats(min_value=0.5, max_value=0.999))
def test_estimate_brackets_effect_and_swap_negates(
    treated: list[float], control: list[float], confidence: float
) -> None:
    est = welch_difference(treated, control, confidence)
    swapped = welch_difference(control, treated, confidence)
    assert est is not None and swapped is not None
    assert est.low <= est.effect <= est.high
    assert est.covers(est.effect)
    assert swapped.effect == -est.effect
    assert swapped.low == -est.high
    assert swapped.high == -est.low
    assert swapped.df == est.df
    assert min(len(treated), len(control)) - 1 <= est.df + 1e-9
    assert est.df <= len(treated) + len(control) - 2 + 1e-9


@settings(max_examples=50, deadline=None)
@given(
    people=st.integers(min_value=2, max_value=15).flatmap(
        lambda n: st.tuples(
            st.lists(kpi, min_size=n, max_size=n),
            st.lists(kpi, min_size=n, max_size=n),
            st.lists(kpi, min_size=n, max_size=n),
            st.lists(kpi, min_size=n, max_size=n),
        )
    )
)
def test_did_brackets_effect_and_swap_negates(
    people: tuple[list[float], list[float], list[float], list[float]],
) -> None:
    tb, ta, cb, ca = people
    est = difference_in_differences(tb, ta, cb, ca)
    swapped = difference_in_differences(cb, ca, tb, ta)
    assert est is not None and swapped is not None
    assert est.low <= est.effect <= est.high
    assert swapped.effect == -est.effect
    assert (swapped.low, swapped.high) == (-est.high, -est.low)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=1000, allow_nan=False), st.booleans()),
        max_size=60,
    )
)
def test_kaplan_meier_curve_is_a_survival_curve(observations: list[tuple[float, bool]]) -> None:
    durations = [d for d, _ in observations]
    reached = [r for _, r in observations]
    km = kaplan_meier(durations, reached)
    assert all(0.0 <= s <= 1.0 for s in km.survival)
    assert all(a >= b for a, b in zip(km.survival, km.survival[1:], strict=False))
    assert all(a < b for a, b in zip(km.times, km.times[1:], strict=False))
    assert all(a > b for a, b in zip(km.at_risk, km.at_risk[1:], strict=False))
    assert all(1 <= e <= n for e, n in zip(km.events, km.at_risk, strict=True))
    assert sum(km.events) == sum(reached)
    quartiles = [q for q in (km.q1, km.median, km.q3) if q is not None]
    assert quartiles == sorted(quartiles)
    if not any(reached):
        assert km.times == []
    elif all(reached):
        # Nobody censored: the curve ends at 0 at the last time.
        assert km.survival[-1] == 0.0
        assert km.q3 is not None
