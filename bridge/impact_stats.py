"""Statistics for asking whether a learning recommendation moved a KPI.

Everything here is pure and uses only the standard library, so the numbers can be checked by
hand and reproduced anywhere. The designs are the ones a cohort comparison needs:

* ``welch_difference``: difference of means with a Welch (unequal variance) t interval, since
  treated and control groups rarely share a variance or a size.
* ``difference_in_differences``: Welch on each person's change, which removes stable
  differences between people and a trend both groups share.
* ``pre_trend``: whether the groups were already drifting apart before the recommendation,
  the assumption difference-in-differences rests on.
* ``minimum_detectable_effect``: how large a true effect a cohort of a given size can see.
* ``kaplan_meier``: time to reaching competency when some people have not reached it yet.

Student's t quantiles are computed from the regularized incomplete beta function (and, above
1e5 degrees of freedom, from the Cornish-Fisher series), so fractional Welch degrees of
freedom need no table and no third-party library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

# Continued fraction for the incomplete beta function (Numerical Recipes "betacf").
_FPMIN = 1e-300
_CF_EPS = 1e-15
# The fraction needs O(sqrt(max(a, b))) terms in the worst case; this bounds it generously.
_CF_BASE_ITERATIONS = 300
# Above this argument log B(a, b) uses Stirling's series (truncation error far below 1e-16).
_STIRLING_THRESHOLD = 100.0
# Above this many degrees of freedom the quantile comes from the Cornish-Fisher series.
_LARGE_DF = 1e5
# Quantile search.
_QUANTILE_ITERATIONS = 200
_QUANTILE_RTOL = 1e-14
_T_MAX = 1e300
# Survival levels for the quartiles are compared with this slack, so a curve that reaches
# exactly 0.5 (two of four reached) still counts when the product rounds a hair above it.
_SURVIVAL_TOL = 1e-12


# --------------------------------------------------------------------------- Student's t


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz), as in Numerical Recipes.

    Converges quickly for x < (a + 1) / (a + b + 2); callers use the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
    """
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _FPMIN:
        d = _FPMIN
    d = 1.0 / d
    h = d
    max_iterations = _CF_BASE_ITERATIONS + int(10.0 * math.sqrt(max(a, b)))
    for m in range(1, max_iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _CF_EPS:
            break
    return h


def _log_beta(a: float, b: float) -> float:
    """log B(a, b), accurate when one argument is huge.

    lgamma(a + b) - lgamma(a) cancels almost completely for a large (a = df / 2 with
    df = 1e10 loses five digits), so above a threshold the difference is taken from
    Stirling's series, written so that only terms of order b are subtracted.
    """
    big, small = max(a, b), min(a, b)
    if big < _STIRLING_THRESHOLD:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    total = big + small
    # log Gamma(big + small) - log Gamma(big)
    ratio = (
        small * math.log(big)
        + ((total - 0.5) * math.log1p(small / big) - small)
        + (1.0 / total - 1.0 / big) / 12.0
        - (1.0 / total**3 - 1.0 / big**3) / 360.0
        + (1.0 / total**5 - 1.0 / big**5) / 1260.0
    )
    return math.lgamma(small) - ratio


def _betai(a: float, b: float, x: float, y: float, log_x: float, log_y: float) -> float:
    """Regularized incomplete beta I_x(a, b), given y = 1 - x and both logarithms.

    The caller supplies 1 - x and the logarithms computed without cancellation: with a
    large, a * log(x) amplifies the rounding of an x within a hair of 1, and with x below
    the normal range (a huge t) log(x) itself would lose digits.
    """
    if log_x == -math.inf:
        return 0.0
    if log_y == -math.inf:
        return 1.0
    front = math.exp(a * log_x + b * log_y - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def _log1p_square(r: float) -> float:
    """log(1 + r^2) for r >= 0 without overflow for huge r."""
    if r > 1e100:
        return 2.0 * math.log(r) + math.log1p(1.0 / r / r)
    return math.log1p(r * r)


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0: half of I_x(df/2, 1/2) with x = df / (df + t^2).

    The upper tail is computed directly (not as 1 - CDF) so small tail probabilities keep
    their relative precision.
    """
    if t == 0.0:
        return 0.5
    if math.isinf(t):
        return 0.0
    r = t / math.sqrt(df)
    log_x = -_log1p_square(r)
    log_y = -_log1p_square(1.0 / r)
    return 0.5 * _betai(0.5 * df, 0.5, math.exp(log_x), math.exp(log_y), log_x, log_y)


def _t_pdf(t: float, df: float) -> float:
    """Density of Student's t, the derivative used by the Newton steps."""
    log_pdf = (
        math.lgamma(0.5 * (df + 1.0))
        - math.lgamma(0.5 * df)
        - 0.5 * math.log(df * math.pi)
        - 0.5 * (df + 1.0) * _log1p_square(t / math.sqrt(df))
    )
    return math.exp(log_pdf)


def student_t_quantile(p: float, df: float) -> float:
    """The t such that P(T <= t) = p, for any df > 0 including fractional Welch df.

    Interval half-widths and detectable effects are multiples of this quantile, and Welch
    degrees of freedom are rarely whole numbers, so a printed table will not do. The upper
    tail, from the regularized incomplete beta function, is inverted with Newton steps kept
    inside a bracket (bisection when a step would leave it). Above 1e5 degrees of freedom
    the Cornish-Fisher series is used instead (see ``_cornish_fisher_quantile``);
    ``df=math.inf`` gives the normal quantile. p = 0 and p = 1 give -inf and inf.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    if not df > 0.0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p == 0.5:
        return 0.0
    if df > _LARGE_DF:
        return _cornish_fisher_quantile(p, df)
    if p < 0.5:
        return -_upper_quantile(p, df)
    return _upper_quantile(1.0 - p, df)


def _cornish_fisher_quantile(p: float, df: float) -> float:
    """t quantile from the normal one by the Cornish-Fisher series in 1/df (A&S 26.7.5).

    Used above ``_LARGE_DF``, where the incomplete-beta continued fraction (a = df / 2)
    needs ever more terms and loses digits, while the four-term series is already exact to
    machine precision. ``df = inf`` gives the normal quantile.
    """
    z = NormalDist().inv_cdf(p)
    z2 = z * z
    g1 = z * (z2 + 1.0) / 4.0
    g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0
    g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0
    g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0
    v = df
    return z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v


def _upper_quantile(q: float, df: float) -> float:
    """The t >= 0 with P(T > t) = q, for 0 < q < 0.5."""
    # Bracket: tail(lo) > q >= tail(hi). Doubling keeps hi / lo <= 2 once found.
    lo, hi = 0.0, 1.0
    while _t_upper_tail(hi, df) > q:
        lo, hi = hi, hi * 2.0
        if hi > _T_MAX:
            return math.inf
    # Start from the normal quantile when it lies in the bracket, else the bracket midpoint.
    guess = NormalDist().inv_cdf(1.0 - q)
    t = guess if lo < guess < hi else 0.5 * (lo + hi)
    for _ in range(_QUANTILE_ITERATIONS):
        excess = _t_upper_tail(t, df) - q
        if excess == 0.0:
            return t
        if excess > 0.0:
            lo = t
        else:
            hi = t
        pdf = _t_pdf(t, df)
        candidate = t + excess / pdf if pdf > 0.0 else math.nan
        if not lo < candidate < hi:
            candidate = 0.5 * (lo + hi)
        if abs(candidate - t) <= _QUANTILE_RTOL * max(abs(candidate), 1.0) or hi - lo <= _QUANTILE_RTOL * hi:
            return candidate
        t = candidate
    return t


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Estimate:
    """An effect (treated minus control) with its confidence interval.

    ``df`` is the Welch-Satterthwaite degrees of freedom used for the interval, and the group
    sizes are the numbers of people that entered the comparison.
    """

    effect: float
    low: float
    high: float
    df: float
    n_treated: int
    n_control: int

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (ends included)."""
        return self.low <= value <= self.high


def _mean_and_variance(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n - 1), exact zero variance for identical values.

    Two passes with ``math.fsum`` avoid the cancellation of the textbook one-pass formula.
    Identical values are special-cased so the mean is that value and the variance exactly 0,
    which the zero-variance branch of ``welch_difference`` relies on.
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"need at least 2 values, got {n}")
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"values must be finite, got {v}")
    first = values[0]
    if all(v == first for v in values):
        return float(first), 0.0
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, variance


def mean_and_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 denominator) of at least two values.

    The inputs a power calculation wants from a pilot cohort or a previous period.
    """
    mean, variance = _mean_and_variance(values)
    return mean, math.sqrt(variance)


def _welch_df(var_term_treated: float, var_term_control: float, n_treated: int, n_control: int) -> float:
    """Welch-Satterthwaite df from the per-group terms s^2 / n.

    Written with each term's share of SE^2, which lies in [0, 1], so squaring can neither
    overflow nor underflow. When both groups have zero variance the formula is 0/0; the
    pooled df n1 + n2 - 2 is used.
    """
    se2 = var_term_treated + var_term_control
    if se2 == 0.0:
        return float(n_treated + n_control - 2)
    share_treated = var_term_treated / se2
    share_control = var_term_control / se2
    return 1.0 / (share_treated**2 / (n_treated - 1) + share_control**2 / (n_control - 1))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def welch_difference(
    treated: Sequence[float], control: Sequence[float], confidence: float = 0.95
) -> Estimate | None:
    """Difference of means (treated - control) with a Welch t confidence interval.

    Welch's interval does not assume equal variances or sizes, which a recommended group and
    its comparison group seldom have. Returns None when either group has fewer than two
    values (no variance to estimate). If both groups have zero variance the interval
    collapses to the point estimate.
    """
    _check_confidence(confidence)
    n_treated, n_control = len(treated), len(control)
    if n_treated < 2 or n_control < 2:
        return None
    mean_treated, var_treated = _mean_and_variance(treated)
    mean_control, var_control = _mean_and_variance(control)
    term_treated = var_treated / n_treated
    term_control = var_control / n_control
    effect = mean_treated - mean_control
    df = _welch_df(term_treated, term_control, n_treated, n_control)
    se = math.sqrt(term_treated + term_control)
    half_width = 0.0 if se == 0.0 else student_t_quantile(0.5 + 0.5 * confidence, df) * se
    return Estimate(
        effect=effect,
        low=effect - half_width,
        high=effect + half_width,
        df=df,
        n_treated=n_treated,
        n_control=n_control,
    )


def _changes(group: str, before: Sequence[float], after: Sequence[float]) -> list[float]:
    if len(before) != len(after):
        raise ValueError(
            f"{group}: before has {len(before)} values but after has {len(after)}; "
            "they must be paired, one of each per person"
        )
    return [a - b for b, a in zip(before, after, strict=True)]


def difference_in_differences(
    treated_before: Sequence[float],
    treated_after: Sequence[float],
    control_before: Sequence[float],
    control_after: Sequence[float],
    confidence: float = 0.95,
) -> Estimate | None:
    """Welch difference of per-person changes (after - before) between the groups.

    Differencing each person against themselves removes stable differences between people
    (and between the groups), and subtracting the control change removes a trend both
    groups share, such as seasonality in the KPI. The before and after sequences of a group
    are paired by position; a length mismatch raises ValueError naming the group.
    """
    treated_changes = _changes("treated", treated_before, treated_after)
    control_changes = _changes("control", control_before, control_after)
    return welch_difference(treated_changes, control_changes, confidence)


def minimum_detectable_effect(
    sd_treated: float,
    sd_control: float,
    n_treated: int,
    n_control: int,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float | None:
    """Smallest true difference a two-sided Welch test at ``alpha`` detects with ``power``.

    (t_{1-alpha/2, df} + t_{power, df}) * SE with the Welch df: reported next to a null
    result, it says whether "no effect" means the effect is small or the cohort was too
    small to tell. Returns None when a group has fewer than two people.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    for name, sd in (("sd_treated", sd_treated), ("sd_control", sd_control)):
        if not (math.isfinite(sd) and sd >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {sd}")
    if n_treated < 2 or n_control < 2:
        return None
    term_treated = sd_treated**2 / n_treated
    term_control = sd_control**2 / n_control
    se = math.sqrt(term_treated + term_control)
    if se == 0.0:
        return 0.0
    df = _welch_df(term_treated, term_control, n_treated, n_control)
    return (student_t_quantile(1.0 - alpha / 2.0, df) + student_t_quantile(power, df)) * se


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope of values against their period index 0, 1, ..., k - 1."""
    k = len(values)
    centre = (k - 1) / 2.0
    sxx = k * (k * k - 1) / 12.0
    return math.fsum((i - centre) * v for i, v in enumerate(values)) / sxx


def pre_trend(
    treated_periods: Sequence[Sequence[float]],
    control_periods: Sequence[Sequence[float]],
    confidence: float = 0.95,
) -> Estimate | None:
    """Welch difference of per-person least-squares slopes over the periods before.

    Difference-in-differences assumes the groups would have moved in parallel without the
    recommendation. An interval for the slope difference well away from zero says they were
    already diverging, so a DiD estimate would mix that drift into the effect. Each inner
    sequence is one person's values, oldest first; everyone must have the same number of
    periods (ValueError otherwise). Returns None with fewer than two periods or fewer than
    two people in a group.
    """
    lengths = {len(person) for person in (*treated_periods, *control_periods)}
    if len(lengths) > 1:
        raise ValueError(f"every person needs the same number of periods, got {sorted(lengths)}")
    if not lengths or lengths.pop() < 2:
        return None
    for person in (*treated_periods, *control_periods):
        for v in person:
            if not math.isfinite(v):
                raise ValueError(f"values must be finite, got {v}")
    return welch_difference(
        [_slope(person) for person in treated_periods],
        [_slope(person) for person in control_periods],
        confidence,
    )


# --------------------------------------------------------------------------- time to event


@dataclass(frozen=True)
class Survival:
    """Kaplan-Meier table at each time when somebody reached competency.

    ``survival[i]`` is the estimated share not yet competent just after ``times[i]``;
    ``at_risk[i]`` counts people still observed and not yet competent at that time (censored
    people included up to and at their censoring time) and ``events[i]`` those who reached
    it then. The quartiles are of the time to competency; None when the curve never falls to
    that level (too few reached it within the observation window).
    """

    times: list[float]
    survival: list[float]
    at_risk: list[int]
    events: list[int]
    median: float | None
    q1: float | None
    q3: float | None


def _first_time_at_or_below(times: Sequence[float], survival: Sequence[float], level: float) -> float | None:
    for t, s in zip(times, survival, strict=True):
        if s <= level + _SURVIVAL_TOL:
            return t
    return None


def kaplan_meier(durations: Sequence[float], reached: Sequence[bool]) -> Survival:
    """Kaplan-Meier estimate of time to reaching competency, with censoring.

    People who have not reached competency yet are censored: they count as at risk up to
    their last observation and then leave without an event. Dropping them would bias the
    curve toward the fast learners; counting them as never reaching it would bias it the
    other way. At tied times, events come before censorings (the usual convention), so a
    person censored at t is still at risk at t.
    """
    if len(durations) != len(reached):
        raise ValueError(f"durations has {len(durations)} values but reached has {len(reached)}")
    for d in durations:
        if not (math.isfinite(d) and d >= 0.0):
            raise ValueError(f"durations must be finite and >= 0, got {d}")
    observations = sorted(zip(durations, reached, strict=True), key=lambda pair: pair[0])
    times: list[float] = []
    survival: list[float] = []
    at_risk: list[int] = []
    events: list[int] = []
    remaining = len(observations)
    current = 1.0
    i = 0
    while i < len(observations):
        t = observations[i][0]
        j = i
        n_events = 0
        while j < len(observations) and observations[j][0] == t:
            n_events += int(bool(observations[j][1]))
            j += 1
        if n_events:
            current *= (remaining - n_events) / remaining
            times.append(float(t))
            survival.append(current)
            at_risk.append(remaining)
            events.append(n_events)
        remaining -= j - i
        i = j
    return Survival(
        times=times,
        survival=survival,
        at_risk=at_risk,
        events=events,
        median=_first_time_at_or_below(times, survival, 0.5),
        q1=_first_time_at_or_below(times, survival, 0.75),
        q3=_first_time_at_or_below(times, survival, 0.25),
    )
