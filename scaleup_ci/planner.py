"""Pure planning functions: fit the stage timings, predict, size the next stage and ``max``.

Nothing here touches the clock, the filesystem or the environment; every input is passed in.

The cost model
--------------
Every curve has a fixed overhead ``a >= 0`` (start-up, imports, model loading) and a per-example
part ``b * f(n)`` with ``b >= 0``:

- ``constant``: ``a``
- ``linear``:   ``a + b*n``
- ``nlogn``:    ``a + b*n*ln(n)``
- ``power``:    ``a + b*n**k`` with ``k`` in ``[0.3, 3]``
- ``quadratic``: ``a + b*n + c*n**2``, only when the curvature ``c`` is at least
  :data:`QUAD_MIN_T` standard errors above zero. A per-example cost that rises steadily (a
  dataset sorted by difficulty, with ``sample: first``) gives this curve, whose local exponent
  keeps growing: a single power law fitted to the small stages under-predicts its tail.

Fits use weighted least squares on *relative* residuals (weights ``1/seconds**2``), so the large,
slow stages matter as much as the small ones. For a given ``k`` the overhead and slope have a
closed form; ``k`` is found by a grid plus golden-section search.

The kind is selected by an information criterion, ``sse / sigma**2 + 2 * params``: AIC with the
noise scale fixed at the pooled, prior-shrunk scatter of the power fit. (AICc is reported in
``goodness`` too, but with the 4-6 points a run has, its small-sample term swamps the fit: it
picks a constant for clearly quadratic timings.) When kinds are within 2 of the best,
:func:`choose` predicts with the most pessimistic one at the target ``n``. Sizing ``max`` keeps
the best kind as the centre and lets a more pessimistic tied kind raise the pessimistic edge
(its own prediction plus the run's scatter): centring on the pessimistic kind *and* adding the
band on top would count the same uncertainty twice (see :func:`_upper_at`).

Uncertainty
-----------
``Model.upper(n)`` is the prediction plus two uncertainties added in quadrature on a log scale:

- the scatter of a single run (``sigma_rel``, the residual scatter shrunk towards a 10 % prior when
  there are few points), which the ``max`` run itself will show;
- the uncertainty of the curve, which grows with the extrapolation factor ``n / largest n seen``.
  With three or more sizes it comes from the power-law fit: every ``(a, b, k)`` whose relative
  SSE is within ``z**2 * sigma**2`` of the best fit is plausible, and the highest of them at ``n``
  is the pessimistic edge (for each ``k`` on a 0.025 grid the ``(a, b)`` region is an ellipse, so
  its highest prediction has a closed form). Plausible curves pass near the measured points, so
  the band is narrow inside the measured range and widens with the factor, as fast as the data
  allow. A weak prior on ``k`` (centred on 1, sd 0.6) keeps an exponent the data cannot pin down
  (an overhead-dominated script) from ranging up to 3. When the quadratic kind is in play its
  plausible curves (the ellipse of its unconstrained fit, under the same SSE limit) join the
  band. With two sizes the slope's uncertainty comes from a 10 % scatter on each point; with
  one, a ``0.2 * ln(factor)`` term is used.

The first run
-------------
The first run of a script often carries warm-up (imports, caches, JIT). When the point marked
``first`` lies above the curve fitted to the other points by more than the scatter allows, it is
dropped from the fit, so warm-up is neither per-example cost nor a flatter slope. With only two
sizes warm-up cannot be told apart from overhead: when the smaller run took as long or longer,
the prediction falls back to the seconds per example of the larger one.

The engine loop
---------------
:func:`next_step` is the whole decision the engine needs after each stage: run the next fixed
stage (10, 50, 100, 200) while it fits and is cheap next to the time left; then, when ``max``
would be far larger than anything measured, an intermediate stage 2.5 times larger (see
:func:`intermediate_stages`; also when the fit says the whole dataset fits but the last stage's
seconds per example say it does not); then ``max``; or stop early. ``scaleup_ci.simulate`` plays
that loop against synthetic noisy cost curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

KINDS = ("constant", "linear", "nlogn", "power", "quadratic")
N_PARAMS = {"constant": 1, "linear": 2, "nlogn": 2, "power": 3, "quadratic": 3}
K_MIN, K_MAX = 0.3, 3.0
K_GRID_STEP = 0.025
DEFAULT_Z = 1.64
KILL_TOLERANCE = 0.0  # how far the band's edge may pass the time left
PLAN_Z = 1.64  # z of the band that sizes ``max`` (calibrated on scaleup_ci.simulate)
PRIOR_SIGMA = 0.10  # relative scatter assumed before the data says otherwise
PRIOR_DOF = 2.0  # how many residual degrees of freedom the prior is worth
SIGMA_FLOOR = 0.02  # timings are never more repeatable than this
FEW_POINTS_SLOPE_SD = 0.2  # per unit of ln(extrapolation factor), when there is no profile
AICC_TIE = 2.0
MIN_SECONDS = 1e-3
K_PRIOR_SD = 0.6  # sd of the prior on the exponent for the uncertainty band (0: none)
QUAD_MIN_T = 2.0  # the quadratic model needs its curvature this many standard errors above 0
MEMORY_HEADROOM = 0.85
RUN_LEVEL_TERM = False  # True: also count the level's uncertainty in the run term
PESSIMISTIC_CENTRE = False  # True: the old rule, the pessimistic tied model is the centre too
PROBE_SHARE = 0.5  # a fixed stage run on trial may use this share of the time left
INTERMEDIATE_FACTOR = 2.5  # geometric step between intermediate stages
INTERMEDIATE_MAX_FACTOR = 2.0  # no intermediate stage when max extrapolates at most this far
INTERMEDIATE_MAX_SHARE = 0.6  # intermediate stages may take at most this share of the time left
INTERMEDIATE_LIMIT_SHARE = 0.3  # an intermediate stage is stopped after this share of the time left
RULE_FIT = "fit"
RULE_OF_THUMB = "rule-of-thumb"
RULES = (RULE_FIT, RULE_OF_THUMB)

# (k, a, b, sse, inv11, inv12, inv22): the unconstrained fit of a + b*n**k and its inverse
# normal matrix, for the exponent profile band.
ProfileRow = tuple[float, float, float, float, float, float, float]


@dataclass(frozen=True)
class Point:
    """One measured stage: ``n`` examples took ``seconds`` wall-clock and peaked at ``peak_rss``."""

    n: int
    seconds: float
    peak_rss: int | None = None
    stage: str = ""
    first: bool = False


def _basis(kind: str, n: float, k: float = 1.0) -> float:
    if kind == "constant":
        return 0.0
    if kind == "linear":
        return float(n)
    if kind == "nlogn":
        return n * math.log(n) if n > 1 else 0.0
    return float(n) ** k if n > 0 else 0.0


def _dbasis(kind: str, n: float, k: float = 1.0) -> float:
    """Derivative of the basis: the marginal cost of one more example, divided by ``b``."""
    if kind == "constant":
        return 0.0
    if kind == "linear":
        return 1.0
    if kind == "nlogn":
        return math.log(n) + 1.0 if n > 1 else 1.0
    return k * float(n) ** (k - 1.0) if n > 0 else 0.0


def curve_value(kind: str, params: dict[str, float], n: float) -> float:
    """A cost curve of ``kind`` with ``params`` (as in ``Model.to_dict()``) at ``n``."""
    a = params.get("a", 0.0)
    b = params.get("b", 0.0)
    n = max(n, 0.0)
    if kind == "quadratic":
        return a + b * n + params.get("c", 0.0) * n * n
    return a + b * _basis(kind, n, params.get("k", 1.0))


@dataclass(frozen=True)
class Model:
    """A fitted cost curve ``a + b*f(n)`` with its goodness and its uncertainty band."""

    kind: str
    params: dict[str, float]
    goodness: dict[str, Any]
    sigma_rel: float
    n_max_seen: int = 1
    n_points: int = 0
    # The power-law profile over the exponent: one ProfileRow per k (see _profile).
    profile: tuple[ProfileRow, ...] = field(default=(), repr=False)
    profile_sse_min: float = 0.0
    band_sigma: float = PRIOR_SIGMA
    # (n1, y1, n2, y2) when the model is a line through two sizes.
    two_point: tuple[float, float, float, float] | None = None
    # The linear-plus-quadratic fit, when its curvature is significant: its plausible curves
    # join the power law's in the band.
    quad: QuadFit | None = field(default=None, repr=False)

    def predict(self, n: float) -> float:
        """The central prediction of the wall-clock seconds for ``n`` examples."""
        return curve_value(self.kind, self.params, n)

    def band_high(self, n: float, z: float = DEFAULT_Z) -> float | None:
        """The highest prediction at ``n`` among power-law curves ``a + b*n**k`` that fit the
        points within ``z**2 * sigma**2`` (relative SSE) of the best fit: for each ``k`` the
        joint confidence region of ``(a, b)`` is an ellipse, so the highest prediction has a
        closed form. With the quadratic kind in play, its plausible curves count too.
        ``None`` without a profile (fewer than three sizes)."""
        if not self.profile:
            return None
        sse_min = self.profile_sse_min
        if self.quad is not None:
            sse_min = min(sse_min, self.quad.beta_sse)
        limit = sse_min + (z * self.band_sigma) ** 2
        best = -math.inf
        for k, a, b, sse, i11, i12, i22 in self.profile:
            r2 = limit - sse
            if r2 < 0:
                continue
            x = n**k
            var = i11 + 2.0 * i12 * x + i22 * x * x
            hi = a + b * x + math.sqrt(r2 * max(0.0, var))
            if hi > best:
                best = hi
        if self.quad is not None:
            hi_q = self.quad.band_high(n, limit)
            if hi_q is not None and hi_q > best:
                best = hi_q
        return best if best > -math.inf else None

    def upper(self, n: float, z: float = DEFAULT_Z) -> float:
        """Prediction plus uncertainty: single-run scatter and a curve term that grows with
        the extrapolation factor ``n / n_max_seen``."""
        pred = self.predict(n)
        if pred <= 0:
            return 0.0
        factor = max(1.0, n / max(1, self.n_max_seen))
        band_hi = self.band_high(n, z) if factor > 1 or self.profile else None
        if self.two_point is not None:
            n1, y1, n2, y2 = self.two_point
            t = (n - n2) / (n2 - n1)
            sd = PRIOR_SIGMA * math.sqrt((y2 * (1 + t)) ** 2 + (y1 * t) ** 2)
            curve_log = math.log1p(z * max(0.0, sd - PRIOR_SIGMA * y2) / pred)
        elif band_hi is not None:
            curve_log = math.log(max(band_hi, pred) / pred)
        elif self.n_points and factor > 1:
            curve_log = z * FEW_POINTS_SLOPE_SD * math.log(factor)
        else:
            curve_log = 0.0
        # The band already holds the uncertainty of the curve's level; without a band (fewer
        # than three sizes) the level's own uncertainty is added.
        m = max(1, self.n_points)
        level = 0.0 if self.profile and not RUN_LEVEL_TERM else 1.0 / m
        run_log = z * self.sigma_rel * math.sqrt(1.0 + level)
        return pred * math.exp(math.hypot(run_log, curve_log))

    @property
    def per_example_seconds(self) -> float:
        """The marginal cost of one more example at the largest ``n`` seen."""
        b = self.params.get("b", 0.0)
        if self.kind == "quadratic":
            return b + 2.0 * self.params.get("c", 0.0) * self.n_max_seen
        return b * _dbasis(self.kind, self.n_max_seen, self.params.get("k", 1.0))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "params": {key: _round(v) for key, v in self.params.items()},
            "goodness": {
                key: (_round(v) if isinstance(v, float) else v) for key, v in self.goodness.items()
            },
            "sigma_rel": _round(self.sigma_rel),
            "per_example_seconds": _round(self.per_example_seconds),
            "n_max_seen": self.n_max_seen,
        }
        if self.profile:
            limit = self.profile_sse_min + (DEFAULT_Z * self.band_sigma) ** 2
            ks = [row[0] for row in self.profile if row[3] <= limit]
            if ks:
                out["exponent_range"] = [_round(min(ks)), _round(max(ks))]
        return out


def _round(v: float) -> float:
    if not math.isfinite(v):
        return v
    return float(f"{v:.6g}")


# --------------------------------------------------------------------------------------- fitting


def _wls(fs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Weighted least squares of ``y = a + b*f`` with weights ``1/y**2``, ``a, b >= 0``.

    Returns ``(a, b, sse)`` where ``sse`` is the sum of squared *relative* residuals.
    """
    s = sf = sy = sff = sfy = 0.0
    for f, y in zip(fs, ys, strict=True):
        w = 1.0 / (y * y)
        s += w
        sf += w * f
        sy += w * y
        sff += w * f * f
        sfy += w * f * y
    det = s * sff - sf * sf
    if sff > 0 and det > 1e-12 * s * sff:
        b = (s * sfy - sf * sy) / det
        a = (sy - b * sf) / s
    else:
        a, b = -1.0, sfy / sff if sff > 0 else 0.0
    if a < 0:
        a = 0.0
        b = sfy / sff if sff > 0 else 0.0
    if b <= 0:
        b = 0.0
        a = sy / s
    sse = 0.0
    for f, y in zip(fs, ys, strict=True):
        r = (y - a - b * f) / y
        sse += r * r
    return a, b, sse


@dataclass(frozen=True)
class QuadFit:
    """The fit of ``a + b*n + c*n**2`` (weights ``1/y**2``), on ``x = n / scale``.

    ``params``/``sse``: the best fit with ``a, b, c >= 0``. ``beta``/``beta_sse``/``inv``: the
    unconstrained fit and its inverse normal matrix, whose ellipse bounds the plausible curves.
    ``c_t``: the curvature over its standard error, per unit of relative scatter."""

    params: dict[str, float]
    sse: float
    scale: float
    beta: tuple[float, float, float]
    beta_sse: float
    inv: tuple[tuple[float, float, float], ...]
    c_t: float

    def band_high(self, n: float, limit: float) -> float | None:
        r2 = limit - self.beta_sse
        if r2 < 0:
            return None
        t = n / self.scale
        x = (1.0, t, t * t)
        var = sum(x[i] * self.inv[i][j] * x[j] for i in range(3) for j in range(3))
        return sum(bv * xv for bv, xv in zip(self.beta, x, strict=True)) + math.sqrt(
            r2 * max(0.0, var))


def _fit_quadratic(data: Sequence[tuple[float, float]]) -> QuadFit | None:
    """Weighted least squares of ``y = a + b*n + c*n**2`` with ``a, b, c >= 0``: every subset of
    the three terms is solved in closed form and the best one with no negative coefficient is
    kept. ``None`` with fewer than three sizes."""
    if len({n for n, _ in data}) < 3:
        return None
    scale = max(n for n, _ in data)
    rows = [(1.0, n / scale, (n / scale) ** 2) for n, _ in data]
    ys = [y for _, y in data]
    # Normal equations on relative residuals: sum(x_i x_j / y^2) beta = sum(x_i / y).
    gram = [[sum(r[i] * r[j] / (y * y) for r, y in zip(rows, ys, strict=True)) for j in range(3)]
            for i in range(3)]
    rhs = [sum(r[i] / y for r, y in zip(rows, ys, strict=True)) for i in range(3)]

    def sse_of(coef: Sequence[float]) -> float:
        return sum(((y - sum(cf * x for cf, x in zip(coef, r, strict=True))) / y) ** 2
                   for r, y in zip(rows, ys, strict=True))

    try:
        beta = _solve([gram[i] + [rhs[i]] for i in range(3)], 3)
        inv = [_solve([gram[i] + [1.0 if i == j else 0.0] for i in range(3)], 3)
               for j in range(3)]
    except ZeroDivisionError:
        return None
    best: tuple[float, list[float]] = (math.inf, [0.0, 0.0, 0.0])
    for cols in ((0, 1, 2), (0, 1), (0, 2), (1, 2), (0,), (1,), (2,)):
        try:
            sol = _solve([[gram[i][j] for j in cols] + [rhs[i]] for i in cols], len(cols))
        except ZeroDivisionError:
            continue
        if any(v < 0 for v in sol):
            continue
        coef = [0.0, 0.0, 0.0]
        for col, v in zip(cols, sol, strict=True):
            coef[col] = v
        sse = sse_of(coef)
        if sse < best[0]:
            best = (sse, coef)
    sse, (a, b, c) = best
    c_var = inv[2][2]
    return QuadFit(
        params={"a": a, "b": b / scale, "c": c / (scale * scale)},
        sse=sse,
        scale=scale,
        beta=(beta[0], beta[1], beta[2]),
        beta_sse=sse_of(beta),
        inv=tuple((row[0], row[1], row[2]) for row in inv),
        c_t=beta[2] / math.sqrt(c_var) if c_var > 0 else 0.0,
    )


def _solve(mat: list[list[float]], size: int) -> list[float]:
    """Gaussian elimination with partial pivoting on an augmented ``size x (size+1)`` matrix."""
    m = [row[:] for row in mat]
    for col in range(size):
        piv = max(range(col, size), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12 * max(1.0, max(abs(v) for v in m[col])):
            raise ZeroDivisionError("singular")
        m[col], m[piv] = m[piv], m[col]
        for r in range(col + 1, size):
            f = m[r][col] / m[col][col]
            for c in range(col, size + 1):
                m[r][c] -= f * m[col][c]
    out = [0.0] * size
    for r in range(size - 1, -1, -1):
        out[r] = (m[r][size] - sum(m[r][c] * out[c] for c in range(r + 1, size))) / m[r][r]
    return out


def _power_sse(data: Sequence[tuple[float, float]], k: float) -> tuple[float, float, float]:
    fs = [n**k for n, _ in data]
    ys = [y for _, y in data]
    return _wls(fs, ys)


_BAND_GRID = [K_MIN + i * K_GRID_STEP for i in range(round((K_MAX - K_MIN) / K_GRID_STEP) + 1)]


def _golden(fn: Callable[[float], float], lo: float, hi: float, iters: int = 18) -> float:
    g = (math.sqrt(5) - 1) / 2
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = fn(c), fn(d)
    for _ in range(iters):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = fn(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = fn(d)
    return (lo + hi) / 2


def _scan(data: Sequence[tuple[float, float]]) -> list[tuple[ProfileRow, float, float, float]]:
    """One pass over the exponent grid. For each ``k``: the unconstrained fit as a
    :data:`ProfileRow`, and the constrained (``a, b >= 0``) fit ``(a, b, sse)``. With weights
    ``1/y**2`` every sum of squares has a closed form (``sum w*y**2 == m``)."""
    m = float(len(data))
    logs = [math.log(n) for n, _ in data]
    ws = [1.0 / (y * y) for _, y in data]
    wys = [1.0 / y for _, y in data]  # w*y
    s = sum(ws)
    sy = sum(wys)
    out = []
    for k in _BAND_GRID:
        sf = sff = sfy = 0.0
        for ln, w, wy in zip(logs, ws, wys, strict=True):
            f = math.exp(k * ln)
            sf += w * f
            sff += w * f * f
            sfy += wy * f
        det = s * sff - sf * sf
        if det <= 1e-12 * s * sff:
            continue
        b = (s * sfy - sf * sy) / det
        a = (sy - b * sf) / s
        sse = max(0.0, m - a * sy - b * sfy)
        row = (k, a, b, sse, sff / det, -sf / det, s / det)
        if a >= 0 and b > 0:
            out.append((row, a, b, sse))
            continue
        bc = sfy / sff
        if a < 0 and bc > 0:
            out.append((row, 0.0, bc, max(0.0, m - 2 * bc * sfy + bc * bc * sff)))
        else:
            ac = sy / s
            out.append((row, ac, 0.0, max(0.0, m - 2 * ac * sy + ac * ac * s)))
    return out


def _fit_power(
    data: Sequence[tuple[float, float]],
) -> tuple[float, float, float, float, tuple[ProfileRow, ...]]:
    """The best constrained ``(a, b, k, sse)`` and the unconstrained profile over ``k``."""
    scan = _scan(data)
    if not scan:  # degenerate sizes: nothing but an overhead can be fitted
        a, _, sse = _wls([0.0] * len(data), [y for _, y in data])
        return a, 0.0, 1.0, sse, ()
    i = min(range(len(scan)), key=lambda j: scan[j][3])
    _, a, b, sse = scan[i]
    k0 = scan[i][0][0]
    step = _BAND_GRID[1] - _BAND_GRID[0]
    lo, hi = max(K_MIN, k0 - step), min(K_MAX, k0 + step)
    k = _golden(lambda kk: _power_sse(data, kk)[2], lo, hi, iters=10)
    a2, b2, sse2 = _power_sse(data, k)
    if sse2 < sse:
        a, b, sse, k0 = a2, b2, sse2, k
    return a, b, k0, sse, tuple(row for row, *_ in scan)


def _shrunk_sigma(sse: float, dof: int) -> float:
    dof = max(0, dof)
    var = (sse + PRIOR_DOF * PRIOR_SIGMA**2) / (dof + PRIOR_DOF)
    return max(SIGMA_FLOOR, math.sqrt(var))


def _aicc(sse: float, m: int, p: int) -> float | None:
    """AICc of a least-squares fit (``None`` when there are too few points for it)."""
    sse_eff = max(sse, m * 1e-6)
    d = m - p - 1
    if d <= 0:
        return None
    return m * math.log(sse_eff / m) + 2 * p + 2 * p * (p + 1) / d


def _usable(points: Sequence[Point]) -> tuple[list[Point], bool]:
    """The points to fit, and whether the first run was dropped as a warm-up outlier."""
    # Timings under a millisecond carry no information (and would dominate relative weights).
    pts = [
        p if p.seconds >= MIN_SECONDS else replace(p, seconds=MIN_SECONDS)
        for p in points
        if p.n > 0 and p.seconds > 0 and math.isfinite(p.seconds)
    ]
    firsts = [p for p in pts if p.first]
    others = [p for p in pts if not p.first]
    if not firsts or len({p.n for p in others}) < 2:
        return pts, False
    data = [(float(p.n), p.seconds) for p in others]
    if len({p.n for p in others}) >= 3:
        a, b, k, sse, _ = _fit_power(data)
        ref_pred = [a + b * firsts[0].n ** k]
        sigma = _shrunk_sigma(sse, len(data) - 3)
    else:
        a, b, sse = _wls([n for n, _ in data], [y for _, y in data])
        ref_pred = [a + b * firsts[0].n]
        sigma = PRIOR_SIGMA
    threshold = ref_pred[0] * math.exp(max(0.35, 3.0 * sigma))
    if firsts[0].seconds > threshold:
        return others, True
    return pts, False


def fit_all(points: Sequence[Point]) -> list[Model]:
    """Every candidate model for ``points`` (see :func:`fit`), best criterion first."""
    return list(_fit_all_cached(tuple(points)))


@lru_cache(maxsize=512)
def _fit_all_cached(points: tuple[Point, ...]) -> tuple[Model, ...]:
    pts, dropped_first = _usable(points)
    if not pts:
        return ()
    data = tuple((float(p.n), float(p.seconds)) for p in pts)
    m = len(data)
    n_max = max(p.n for p in pts)
    distinct = len({p.n for p in pts})
    ys = [y for _, y in data]
    common: dict[str, Any] = {"n_points": m, "dropped_first": dropped_first}
    band_sigma = PRIOR_SIGMA

    def goodness(sse: float, p: int, kind: str) -> dict[str, Any]:
        mean = sum(math.log(y) for y in ys) / m
        ss_tot = sum((math.log(y) - mean) ** 2 for y in ys)
        r2 = 1.0 - sse / ss_tot if ss_tot > 0 else 1.0
        return {
            **common,
            "aicc": _aicc(sse, m, p),
            "criterion": sse / band_sigma**2 + 2 * p,
            "r2": r2,
            "rmse_rel": math.sqrt(sse / m),
        }

    models: list[Model] = []
    if distinct <= 2:
        # Too few points for curvature or a scatter estimate. Two sizes: a line through them,
        # with the slope's uncertainty from a 10 % scatter on each; but when the smaller run took
        # longer (or was the first run, which may carry warm-up, and the slope is flat) the slope
        # is unknowable and the pessimistic "seconds per example of the last stage" is used.
        # One size: seconds per example.
        by_n: dict[float, list[float]] = {}
        for n, y in data:
            by_n.setdefault(n, []).append(y)
        (n1, y1), *rest = sorted((n, max(v)) for n, v in by_n.items())
        n2, y2 = rest[0] if rest else (n1, y1)
        slope = (y2 - y1) / (n2 - n1) if rest else 0.0
        if rest and slope > 0:
            a = max(0.0, y2 - slope * n2)
            b = (y2 - a) / n2
            sse = sum(((y - a - b * n) / y) ** 2 for n, y in data)
            models.append(
                Model(
                    kind="linear",
                    params={"a": a, "b": b},
                    goodness={**goodness(sse, 2, "linear"), "criterion": 0.0},
                    sigma_rel=PRIOR_SIGMA,
                    n_max_seen=n_max,
                    n_points=m,
                    two_point=(n1, y1, n2, y2),
                )
            )
        else:
            prop_b = y2 / n2
            prop_sse = sum(((y - prop_b * n) / y) ** 2 for n, y in data)
            models.append(
                Model(
                    kind="linear",
                    params={"a": 0.0, "b": prop_b},
                    goodness={
                        **goodness(prop_sse, 2, "linear"),
                        "criterion": 0.0,
                        "through": "last",
                    },
                    sigma_rel=PRIOR_SIGMA,
                    n_max_seen=n_max,
                    n_points=m,
                )
            )
        return tuple(models)

    pa, pb, pk, psse, profile = _fit_power(data)
    band_sigma = _shrunk_sigma(psse, m - 3)
    if K_PRIOR_SD:
        # A weak prior on the exponent (centred on linear): enough to keep an exponent that the
        # data cannot pin down (an overhead-dominated script) from reaching k = 3.
        profile = tuple(
            (k, a, b, sse + band_sigma**2 * ((k - 1.0) / K_PRIOR_SD) ** 2, i11, i12, i22)
            for k, a, b, sse, i11, i12, i22 in profile
        )
    sse_min = min((row[3] for row in profile), default=0.0)
    # Keep the rows that any z up to 3 can reach: the rest never bound a prediction.
    profile = tuple(row for row in profile if row[3] <= sse_min + (3.0 * band_sigma) ** 2)
    fits: dict[str, tuple[dict[str, float], float]] = {"power": ({"a": pa, "b": pb, "k": pk}, psse)}
    for kind in ("constant", "linear", "nlogn"):
        a, b, sse = _wls([_basis(kind, n) for n, _ in data], ys)
        fits[kind] = ({"a": a} if kind == "constant" else {"a": a, "b": b}, sse)
    # The linear-plus-quadratic curve (cost per example rising steadily, e.g. with the index)
    # joins only when the data show its curvature: otherwise chance curvature in linear timings
    # would make every plan pessimistic. Its plausible curves join the band only when it is
    # tied with the best model: a parabola that misfits n**1.2 would widen it far beyond what
    # the data say.
    quad = _fit_quadratic(data)
    if quad is not None and quad.c_t >= QUAD_MIN_T * band_sigma:
        fits["quadratic"] = (quad.params, quad.sse)
        best = min(sse / band_sigma**2 + 2 * N_PARAMS[kind] for kind, (_, sse) in fits.items())
        if quad.sse / band_sigma**2 + 2 * N_PARAMS["quadratic"] - best >= AICC_TIE:
            quad = None
    else:
        quad = None
    for kind, (params, sse) in fits.items():
        p = N_PARAMS[kind]
        models.append(
            Model(
                kind=kind,
                params=params,
                goodness=goodness(sse, p, kind),
                sigma_rel=_shrunk_sigma(sse, m - p),
                n_max_seen=n_max,
                n_points=m,
                profile=profile,
                profile_sse_min=sse_min,
                quad=quad,
                band_sigma=band_sigma,
            )
        )
    models.sort(key=lambda md: md.goodness["criterion"])
    return tuple(models)


def choose(models: Sequence[Model], n: float) -> Model:
    """The model to predict ``n`` with: among those within 2 of the best criterion (see the
    module docstring), the most pessimistic (largest prediction) at ``n``."""
    if not models:
        raise ValueError("choose() needs at least one model")
    ranked = sorted(models, key=lambda md: md.goodness["criterion"])
    best = ranked[0]
    chosen, chosen_pred = best, best.predict(n)
    for md in ranked[1:]:
        if md.goodness["criterion"] - best.goodness["criterion"] >= AICC_TIE:
            break
        pred = md.predict(n)
        if pred > chosen_pred * 1.001:  # ignore differences that are only rounding
            chosen, chosen_pred = md, pred
    return chosen


def fit(points: Sequence[Point], target_n: float | None = None) -> Model | None:
    """Fit the timings; ``None`` when there is nothing to fit.

    Ties (within 2 of the best criterion) are broken pessimistically at ``target_n`` (default:
    four times the largest ``n`` measured).
    """
    models = fit_all(points)
    if not models:
        return None
    target = target_n if target_n is not None else 4.0 * max(md.n_max_seen for md in models)
    return choose(models, target)


# -------------------------------------------------------------------------------------- planning


def stage_limit(
    predicted: float | None, remaining: float, *, factor: float = 3.0, floor: float = 10.0
) -> float:
    """A stage's wall-clock limit: ``min(remaining, max(floor, factor*predicted))``."""
    if predicted is None:
        return max(0.0, remaining)
    return max(0.0, min(remaining, max(floor, factor * predicted)))


def extrapolation_factor(max_n: int, largest_done: int) -> float:
    """How far ``max`` extrapolates beyond the largest finished stage."""
    return max_n / max(1, largest_done)


@dataclass(frozen=True)
class Plan:
    """How large ``max`` should be, and why."""

    max_n: int
    predicted_seconds: float | None
    predicted_upper: float | None
    predicted_full_seconds: float | None
    dataset_size: int
    reason: str
    model: Model | None
    memory_capped: bool = False
    rule: str = RULE_FIT
    # What would fit if the central prediction were exact (no uncertainty, same margin).
    central_n: int | None = None

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else _round(v)

        return {
            "max_n": self.max_n,
            "predicted_seconds": r(self.predicted_seconds),
            "predicted_upper": r(self.predicted_upper),
            "predicted_full_seconds": r(self.predicted_full_seconds),
            "dataset_size": self.dataset_size,
            "reason": self.reason,
            "memory_capped": self.memory_capped,
            "rule": self.rule,
            "central_n": self.central_n,
            "model": self.model.to_dict() if self.model else None,
        }


def _upper_at(models: Sequence[Model], n: float, z: float | None = None) -> tuple[Model, float]:
    """The model to predict ``n`` with, and the pessimistic edge of the prediction at ``z``.

    The central prediction is the best model's (lowest criterion). The edge is the highest of
    the best model's band (:meth:`Model.upper`: the run's scatter and the curve's uncertainty in
    quadrature) and, for every model tied with it (within :data:`AICC_TIE`), that model's own
    prediction plus the run's scatter: when the models disagree, the more pessimistic one bounds
    the plan. Using the pessimistic model as the centre *and* adding the band on top would count
    the same uncertainty twice."""
    zz = PLAN_Z if z is None else z
    if PESSIMISTIC_CENTRE:
        md = choose(models, n)
        return md, md.upper(n, zz)
    ranked = sorted(models, key=lambda md: md.goodness["criterion"])
    best = ranked[0]
    up = best.upper(n, zz)
    pess = choose(ranked, n)
    if pess is not best:
        m = max(1, pess.n_points)
        run_log = zz * pess.sigma_rel * math.sqrt(1.0 + 1.0 / m)
        up = max(up, pess.predict(n) * math.exp(run_log))
    return best, up


def memory_cap(points: Sequence[Point], memory_limit: int | None) -> int | None:
    """Largest ``n`` whose predicted peak RSS (a line ``a + b*n`` through the points that have
    one) stays under 85 % of ``memory_limit``; ``None`` when there is no limit or no growth."""
    if not memory_limit:
        return None
    pts = [(float(p.n), float(p.peak_rss)) for p in points if p.peak_rss]
    if len({n for n, _ in pts}) < 2:
        return None
    m = len(pts)
    mx = sum(n for n, _ in pts) / m
    my = sum(r for _, r in pts) / m
    sxx = sum((n - mx) ** 2 for n, _ in pts)
    b = sum((n - mx) * (r - my) for n, r in pts) / sxx
    if b <= 0:
        return None
    a = my - b * mx
    return max(0, math.floor((MEMORY_HEADROOM * memory_limit - a) / b))


def _fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:.0f}s"
    if seconds >= 10:
        return f"{seconds:.1f}s"
    return f"{seconds:.2f}s"


def _fmt_bytes(v: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024:
            return f"{v:.0f}{unit}" if unit == "B" else f"{v:.1f}{unit}"
        v /= 1024
    return f"{v:.1f}TiB"


def _largest(ok: Callable[[int], bool], hi: int, lo: int = 1) -> int:
    """The largest ``n`` in ``[0, hi]`` with ``ok(n)``, for a monotone ``ok`` (true at ``lo``
    unless ``lo == 1``)."""
    if ok(hi):
        return hi
    if lo <= 1 and not ok(1):
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def plan_max(
    points: Sequence[Point],
    *,
    remaining: float,
    margin: float,
    dataset_size: int,
    largest_done: int,
    memory_limit: int | None = None,
    rule: str = RULE_FIT,
) -> Plan:
    """The largest ``n <= dataset_size`` such that ``upper(n) * (1 + margin) <= remaining``.

    ``rule="rule-of-thumb"`` is the manual method's baseline: seconds per example of the last
    stage, ``max_n = floor(remaining * (1 - margin) / per_example)``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown planning rule {rule!r}; expected one of {', '.join(RULES)}")
    remaining = max(0.0, remaining)
    usable = [p for p in points if p.n > 0 and p.seconds > 0]
    if not usable or dataset_size <= 0:
        why = "no examples in the dataset" if dataset_size <= 0 else "no timings to plan from"
        return Plan(0, None, None, None, dataset_size, why, None, rule=rule)

    if rule == RULE_OF_THUMB:
        last = usable[-1]
        per = last.seconds / last.n
        n = min(dataset_size, math.floor(remaining * (1 - margin) / per))
        pred = per * n
        model = Model(
            kind="linear",
            params={"a": 0.0, "b": per},
            goodness={"n_points": 1, "through": "last"},
            sigma_rel=0.0,
            n_max_seen=last.n,
            n_points=1,
        )
        if n >= dataset_size:
            reason = (
                f"the whole dataset ({dataset_size} examples) fits: predicted {_fmt_s(pred)} "
                f"of {_fmt_s(remaining)} remaining ({per:.4g}s per example)"
            )
        else:
            reason = (
                f"{per:.4g}s per example (last stage: {last.n} in {_fmt_s(last.seconds)}) "
                f"x {n} examples = {_fmt_s(pred)}, within {_fmt_s(remaining)} remaining "
                f"less a {margin:.0%} margin"
            )
        return Plan(
            max(0, n), pred, pred, per * dataset_size, dataset_size, reason, model, rule=rule
        )

    models = fit_all(usable)
    mem_n = memory_cap(points, memory_limit)

    def fits(n: int) -> bool:
        # The central prediction with the margin must fit, and the pessimistic edge of the band
        # (the run's scatter and the curve's uncertainty at PLAN_Z) may exceed the time left by
        # at most KILL_TOLERANCE: the margin is not stacked on top of the band.
        md, up = _upper_at(models, n)
        return (md.predict(n) * (1 + margin) <= remaining
                and up <= remaining * (1 + KILL_TOLERANCE))

    def fits_central(n: int) -> bool:
        return _upper_at(models, n)[0].predict(n) * (1 + margin) <= remaining

    n = _largest(fits, dataset_size)
    central = _largest(fits_central, dataset_size, lo=max(1, n))
    time_n = n
    capped = False
    if mem_n is not None and mem_n < n:
        n, capped = mem_n, True

    model, up = _upper_at(models, max(n, 1))
    pred = model.predict(max(n, 1)) if n > 0 else 0.0
    # The same (best) model as max's prediction and the summary's chart: a pessimistic tied
    # kind bounds the plan's edge, but extrapolated to the whole dataset it can be off 40x.
    full = _upper_at(models, dataset_size)[0].predict(dataset_size)
    up_val = up if n > 0 else 0.0
    desc = f"{model.kind} model, {model.goodness.get('n_points', 0)} points"
    if n >= dataset_size and n > largest_done:
        reason = (
            f"the whole dataset ({dataset_size} examples) fits: predicted {_fmt_s(pred)} "
            f"of {_fmt_s(remaining)} remaining (upper {_fmt_s(up_val)}, {desc})"
        )
    elif n <= largest_done:
        nxt = largest_done + 1
        if capped and mem_n is not None and mem_n <= largest_done:
            reason = (
                f"stopped early: memory would exceed {MEMORY_HEADROOM:.0%} of the "
                f"{_fmt_bytes(memory_limit or 0)} limit beyond {mem_n} examples"
            )
        else:
            need = _upper_at(models, nxt)[1] * (1 + margin)
            reason = (
                f"stopped early: the next larger run ({nxt} examples) would need "
                f"{_fmt_s(need)} with the {margin:.0%} margin, but only {_fmt_s(remaining)} "
                f"remain ({desc})"
            )
    else:
        reason = (
            f"max = {n} of {dataset_size} examples: predicted {_fmt_s(pred)}, upper "
            f"{_fmt_s(up_val)} (+{margin:.0%} margin) of {_fmt_s(remaining)} remaining; "
            f"extrapolating x{extrapolation_factor(n, largest_done):.1f} from {largest_done} "
            f"({desc}); the whole dataset would take about {_fmt_s(full)}"
        )
        if capped:
            reason += (
                f"; memory-capped: time alone allows {time_n}, but peak memory would exceed "
                f"{MEMORY_HEADROOM:.0%} of the {_fmt_bytes(memory_limit or 0)} limit"
            )
    return Plan(
        max_n=max(0, n),
        predicted_seconds=pred,
        predicted_upper=up_val,
        predicted_full_seconds=full,
        dataset_size=dataset_size,
        reason=reason,
        model=model,
        memory_capped=capped,
        rule=rule,
        central_n=central,
    )


def estimate_full(points: Sequence[Point], dataset_size: int) -> tuple[Model, float] | None:
    """After the run: the best model fitted to every finished stage, and its prediction for the
    whole dataset. ``points`` may hold a partial stage as (records done, seconds): a progressive
    max measures the cost far past the fixed stages, so it corrects the extrapolation."""
    usable = [p for p in points if p.n > 0 and p.seconds > 0]
    if not usable or dataset_size <= 0:
        return None
    # A constant (no growth with n) fits timings dominated by a start-up, but says nothing
    # about the whole dataset: the best growing model is used.
    models = [md for md in fit_all(usable) if md.kind != "constant"]
    if not models:
        return None
    best = _upper_at(models, dataset_size)[0]
    return best, best.predict(dataset_size)


def next_stage_fits(
    points: Sequence[Point],
    n: int,
    *,
    remaining: float,
    margin: float,
    rule: str = RULE_FIT,
) -> tuple[bool, float | None]:
    """Whether a planned stage of ``n`` examples fits in ``remaining`` (with the margin), and its
    predicted seconds. With no timings yet every stage fits (prediction ``None``)."""
    usable = [p for p in points if p.n > 0 and p.seconds > 0]
    if not usable:
        return True, None
    if rule == RULE_OF_THUMB:
        last = usable[-1]
        pred = last.seconds / last.n * n
        return pred * (1 + margin) <= remaining, pred
    model, up = _upper_at(fit_all(usable), n)
    return up * (1 + margin) <= remaining, model.predict(n)


def intermediate_stages(
    largest_done: int,
    max_n: int,
    *,
    factor: float | None = None,
    max_factor: float | None = None,
    max_share: float | None = None,
    points: Sequence[Point] | None = None,
    remaining: float | None = None,
    margin: float = 0.1,
) -> list[int]:
    """Geometric stages ``factor`` apart between the largest finished stage and ``max``.

    The rule: nothing when ``max_n / largest_done <= max_factor`` (the extrapolation is short
    enough). Otherwise ``largest_done * factor**j`` for ``j = 1, 2, ...``, up to the first stage
    that brings the factor down to ``max_factor``, and never above ``max_n / 2``. Then the cost is
    weighed, stage by stage: a stage is kept only while all kept stages together are predicted
    (with ``points``: the central prediction plus the margin) to take at most ``max_share`` of
    ``remaining``; without ``points`` their share of ``max_n`` examples is used, which is exact
    for a linear cost. An empty list means the budget is better spent on ``max`` directly. The
    engine re-plans after each stage, so only the first entry binds, and it runs with a limit
    of at most :data:`INTERMEDIATE_LIMIT_SHARE` of ``remaining``: a stage that turns out more
    expensive than predicted is stopped, and ``max`` is planned from the stages before it.

    ``max_n`` is best given as the *central* estimate (what would fit if the prediction were
    exact; :attr:`Plan.central_n`): when the curve is uncertain the cautious ``max_n`` is small,
    and that is exactly when a cheap larger stage buys the most.
    """
    factor = INTERMEDIATE_FACTOR if factor is None else factor
    max_factor = INTERMEDIATE_MAX_FACTOR if max_factor is None else max_factor
    max_share = INTERMEDIATE_MAX_SHARE if max_share is None else max_share
    if largest_done <= 0 or max_n <= 0:
        return []
    if extrapolation_factor(max_n, largest_done) <= max_factor:
        return []
    stages: list[int] = []
    s = float(largest_done)
    while True:
        s *= factor
        if s > max_n / 2:
            break
        stages.append(int(round(s)))
        if max_n / s <= max_factor:
            break
    usable = [p for p in points or () if p.n > 0 and p.seconds > 0]
    models = fit_all(usable) if usable else []
    kept: list[int] = []
    spent = 0.0
    for st in stages:
        if models and remaining:
            spent += choose(models, st).predict(st) * (1 + margin) / remaining
        else:
            spent += st / max_n
        if spent > max_share:
            break
        kept.append(st)
    return kept


# ----------------------------------------------------------------------------------- engine step


@dataclass(frozen=True)
class Step:
    """What the engine should do next: run a ``stage`` of ``n``, run ``max`` of ``n``, or
    ``stop`` (nothing larger fits)."""

    action: str
    n: int
    predicted_seconds: float | None
    limit_seconds: float
    reason: str
    plan: Plan | None = None
    # A fixed stage run on trial (see next_step): stopped at ``limit_seconds`` and dropped then.
    probe: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "n": self.n,
            "predicted_seconds": self.predicted_seconds,
            "limit_seconds": self.limit_seconds,
            "reason": self.reason,
            "plan": self.plan.to_dict() if self.plan else None,
            "probe": self.probe,
        }


def _stage_limit_for(
    usable: Sequence[Point], n: int, pred: float | None, remaining: float, rule: str = RULE_FIT
) -> float:
    """The limit of a stage: three times its pessimistic prediction (floor 10 s)."""
    if pred is None or rule != RULE_FIT or len({p.n for p in usable}) < 3:
        return stage_limit(pred, remaining)
    return stage_limit(max(pred, _upper_at(fit_all(usable), n)[1]), remaining)


def next_step(
    points: Sequence[Point],
    *,
    pending: Sequence[int],
    remaining: float,
    margin: float,
    dataset_size: int,
    largest_done: int,
    memory_limit: int | None = None,
    rule: str = RULE_FIT,
    stage_share: float = 1.0 / 3.0,
    intermediate: bool = True,
) -> Step:
    """The engine's decision after each stage.

    ``pending`` are the fixed stages not yet run (e.g. ``[50, 100, 200]``). Before any timing the
    first pending stage runs. With one or two sizes measured the next fixed stage runs whenever
    it fits (the curve is not known well enough to skip it). After that a stage (fixed, or with
    the fit rule an intermediate one from :func:`intermediate_stages`) runs when its pessimistic
    time, with the margin, is at most ``stage_share`` of what remains: a larger stage would
    leave too little for ``max``. Otherwise ``max`` runs, or the run stops early when ``max``
    would not be larger than the largest finished stage.
    """
    pend = sorted(s for s in pending if largest_done < s < dataset_size)
    usable = [p for p in points if p.n > 0 and p.seconds > 0]
    if not usable:
        if pend:
            return Step("stage", pend[0], None, stage_limit(None, remaining), "no timings yet")
        n = dataset_size
        return Step("max", n, None, stage_limit(None, remaining), "no timings yet", None)
    few = len({p.n for p in usable}) < 3
    mem_n = memory_cap(points, memory_limit)
    if pend and (mem_n is None or pend[0] <= mem_n):
        # A stage that fits means a larger max exists too, so there is no need to plan yet.
        s = pend[0]
        share = 1.0 if few else stage_share
        ok, pred = next_stage_fits(points, s, remaining=remaining * share, margin=margin, rule=rule)
        if ok:
            why = f"stage {s}: predicted {_fmt_s(pred or 0.0)}" + (
                "" if few else f", within {share:.0%} of the {_fmt_s(remaining)} remaining"
            )
            limit = _stage_limit_for(usable, s, pred, remaining, rule)
            return Step("stage", s, pred, limit, why, None)
        floor = max(p.seconds for p in usable)
        if few and rule == RULE_FIT and floor * (1 + margin) <= PROBE_SHARE * remaining:
            # One or two sizes cannot tell a start-up (model loading, imports) from per-example
            # cost, and the pessimistic reading (all of it per example) can make max tiny. The
            # stage costs at least the slowest run so far (cost never falls with n): when that
            # fits in a share of the time left, run it on trial, stopped at that share.
            limit = PROBE_SHARE * remaining
            why = (f"stage {s} on trial: up to {_fmt_s(pred or 0.0)} if all the time so far is "
                   f"per-example cost, about {_fmt_s(floor)} if it is start-up; stopped after "
                   f"{_fmt_s(limit)} if it is the former")
            return Step("stage", s, pred, limit, why, None, probe=True)
        if (not few and rule == RULE_FIT and pred is not None
                and pred * (1 + margin) <= share * remaining):
            # Only the pessimistic edge is too large (noisy timings, a curve the points cannot
            # pin down): the stage is likely cheap and its timing narrows the band most. Run it
            # on trial, stopped at the same share of the time left.
            limit = share * remaining
            why = (f"stage {s} on trial: predicted {_fmt_s(pred)}, but its pessimistic edge is "
                   f"over {share:.0%} of the {_fmt_s(remaining)} remaining; stopped after "
                   f"{_fmt_s(limit)}")
            return Step("stage", s, pred, limit, why, None, probe=True)
    plan = plan_max(
        points,
        remaining=remaining,
        margin=margin,
        dataset_size=dataset_size,
        largest_done=largest_done,
        memory_limit=memory_limit,
        rule=rule,
    )
    if plan.max_n <= largest_done:
        return Step("stop", plan.max_n, plan.predicted_seconds, 0.0, plan.reason, plan)
    if intermediate and rule == RULE_FIT and not plan.memory_capped:
        share = INTERMEDIATE_MAX_SHARE
        last = max(usable, key=lambda p: p.n)
        if plan.max_n >= dataset_size and last.seconds / last.n * dataset_size * (1 + margin) > (
                remaining):
            # The fit says the whole dataset fits but the last stage's seconds per example say
            # it does not: a noisy, flat-looking start can make a long jump look safe. A stage
            # that shortens the jump is worth running while the whole dataset still fits after.
            need = max(plan.predicted_upper or 0.0, (plan.predicted_seconds or 0.0) * (1 + margin))
            share = min(share, max(0.0, remaining - need) / remaining) if remaining > 0 else 0.0
        elif plan.max_n >= dataset_size:
            share = 0.0
        extra = intermediate_stages(
            largest_done,
            max(plan.max_n, plan.central_n or 0),
            points=points,
            remaining=remaining,
            margin=margin,
            max_share=share,
        )
        if extra:
            s = extra[0]
            pred = choose(fit_all(usable), s).predict(s)
            why = (
                f"intermediate stage {s}: predicted {_fmt_s(pred)}, to shorten the "
                f"extrapolation to max (now x{extrapolation_factor(plan.max_n, largest_done):.1f})"
            )
            # Its limit: a share of the time left, but never below 1.5x its own prediction (with
            # the margin), or it would be killed for sure. A stage needing more than half of what
            # is left is not worth it: go straight to max instead.
            need = pred * (1 + margin)
            limit = min(
                _stage_limit_for(usable, s, pred, remaining),
                max(INTERMEDIATE_LIMIT_SHARE * remaining, 1.5 * need),
            )
            if need <= 0.5 * remaining and need <= limit:
                return Step("stage", s, pred, limit, why, plan)
    return Step(
        "max",
        plan.max_n,
        plan.predicted_seconds,
        stage_limit(plan.predicted_upper, remaining) if rule == RULE_FIT else remaining,
        plan.reason,
        plan,
    )
