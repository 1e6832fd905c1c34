"""The DP's numba kernels: the Poisson window, one backward and one forward period for every SKU at once.

Compiled with ``cache=True``: the machine code is cached beside this module and reused until it changes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Probability mass the Poisson window may drop on each side.
_TAIL = 1e-15
# Reassociation lets LLVM vectorise the convolution's dot products; no 'nnan'/'ninf': -inf marks "not allowed".
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True)
def _poisson_window(lam: float, top: int, pmf: np.ndarray, cum: np.ndarray, dcum: np.ndarray) -> tuple[int, int]:
    """Poisson(lam) on its window [lo, hi], hi <= top: pmf[d], and the prefix sums of pmf[d] and d pmf[d] from lo.

    The window widens from the mode until the mass outside it is below _TAIL on each side, bounded by the
    geometric decay of pmf ratios away from the mode. It starts from exp(log pmf(lo)) rather than exp(-lam) so
    large rates do not underflow. lo > hi (empty) when all of the mass lies above ``top``.
    """
    if lam <= 0.0:
        pmf[0], cum[0], dcum[0] = 1.0, 1.0, 0.0
        return 0, 0
    mode = int(lam)
    lo, p = mode, math.exp(mode * math.log(lam) - lam - math.lgamma(mode + 1.0))
    while lo > 0:
        ratio = lo / lam  # pmf(k - 1) / pmf(k) <= ratio < 1 for k <= lo: the lower tail is <= p ratio / (1 - ratio)
        if ratio < 1.0 and p * ratio / (1.0 - ratio) < _TAIL:
            break
        p *= ratio
        lo -= 1
    if lo > top:
        return lo, top
    d, p = lo, math.exp(lo * math.log(lam) - lam - math.lgamma(lo + 1.0))
    pmf[d], cum[d], dcum[d] = p, p, d * p
    while d < top:
        ratio = lam / (d + 1.0)  # pmf(k + 1) / pmf(k) <= ratio < 1 for k >= d: the upper tail is <= p ratio/(1-ratio)
        if ratio < 1.0 and p * ratio / (1.0 - ratio) < _TAIL:
            break
        p *= ratio
        d += 1
        pmf[d], cum[d], dcum[d] = p, cum[d - 1] + p, dcum[d - 1] + d * p
    return lo, d


@njit(cache=True, inline="always")
def _sales(s: int, lo: int, hi: int, cum: np.ndarray, dcum: np.ndarray) -> tuple[float, float]:
    """(P(D >= s), E[min(D, s)]) from the window's prefix sums: E[min(D, s)] = sum_{d<s} d pmf(d) + s P(D >= s)."""
    top = min(hi, s - 1)
    if top < lo:
        return 1.0, float(s)
    survival = max(1.0 - cum[top], 0.0)
    return survival, dcum[top] + s * survival


@njit(cache=True, fastmath=_FASTMATH)
def _convolve_into(pmf: np.ndarray, lo: int, hi: int, src: np.ndarray, dst: np.ndarray, a: int, b: int, c: int) -> None:
    """dst[k] += sum over d in [lo, hi] with a <= k - d <= c of pmf[d] * src[k - d], for k <= b: the hot loop.

    Written as axpy sweeps over k on slices (long, contiguous, no negative-index checks: numba vectorises them,
    ~3x faster than indexing src[k - d] directly), four values of d per sweep so dst is loaded and stored a
    quarter as often; the first three k of a sweep, where not all four terms exist yet, are done one by one.
    Sweeps of four may read src up to index c + 3: the caller keeps src[c + 1 .. c + 3] zero (or c >= b).
    """
    d = lo
    while d + 3 <= hi:
        p0, p1, p2, p3 = pmf[d], pmf[d + 1], pmf[d + 2], pmf[d + 3]
        for k in range(d + a, min(d + a + 3, b + 1)):
            acc = p0 * src[k - d]
            if k - d - 1 >= a:
                acc += p1 * src[k - d - 1]
            if k - d - 2 >= a:
                acc += p2 * src[k - d - 2]
            dst[k] += acc
        start = d + a + 3
        n = min(b, d + c + 3) + 1 - start
        if n > 0:
            out = dst[start : start + n]
            s0 = src[start - d : start - d + n]
            s1 = src[start - d - 1 : start - d - 1 + n]
            s2 = src[start - d - 2 : start - d - 2 + n]
            s3 = src[start - d - 3 : start - d - 3 + n]
            for k in range(n):
                out[k] += p0 * s0[k] + p1 * s1[k] + p2 * s2[k] + p3 * s3[k]
        d += 4
    while d <= hi:
        n = min(b, d + c) + 1 - d - a
        if n > 0:
            out = dst[d + a : d + a + n]
            s0 = src[a : a + n]
            pd = pmf[d]
            for k in range(n):
                out[k] += pd * s0[k]
        d += 1


@njit(cache=True)
def _continuation(
    w_next: np.ndarray, col: int, R: int, last: bool, flush: bool, salvage: float, arrive: int, cont: np.ndarray
) -> bool:
    """Fill cont[x] = C(x) for x = 0..R; False if the column is unreachable (-inf: no price allowed after it)."""
    if last:
        for x in range(R + 1):
            cont[x] = salvage * x
        return True
    if flush:
        base = w_next[arrive, col]
        for x in range(R + 1):
            cont[x] = salvage * x + base
        return base > -np.inf
    for x in range(R + 1):
        cont[x] = w_next[x + arrive, col]
    return cont[0] > -np.inf


@njit(parallel=True, cache=True)
def _backward_period(
    last: bool,
    lam: np.ndarray,  # (n, J) demand this period
    reward: np.ndarray,  # (n, J)
    evaluate: np.ndarray,  # (n, J) bool: prices whose Q is computed (others stay -inf)
    moves: np.ndarray,  # (n, P, J) bool: price j allowed after previous-price state p
    salvage: np.ndarray,  # (n,)
    flush: np.ndarray,  # (n,) bool: stock expires at the end of this period
    arrive_next: np.ndarray,  # (n,) arrivals at the start of the next period
    reach: np.ndarray,  # (n,) largest stock this period
    w_next: np.ndarray,  # (n, S+1, K) next period's values, K = 1 (stateless) or J (by previous price)
    w_out: np.ndarray,  # (n, S+1, P) out: this period's values per previous-price state
    pol_out: np.ndarray,  # (n, S+1, P) int8 out: chosen ladder index
    s_query: np.ndarray,  # (n,) stock at which to record Q of every price (-1 = none)
    q_out: np.ndarray,  # (n, J) out
) -> None:
    """One backward step of the DP for every SKU: Q_t(s, j), then the max over the prices each state allows."""
    n, J = lam.shape
    P = moves.shape[1]
    by_price = w_next.shape[2] > 1
    for i in prange(n):
        R = reach[i]
        q = np.full((J, R + 1), -np.inf)
        cont = np.empty(R + 1)
        pmf = np.empty(R + 1)
        cum = np.empty(R + 1)
        dcum = np.empty(R + 1)
        finite = True
        if not by_price:
            finite = _continuation(w_next[i], 0, R, last, flush[i], salvage[i], arrive_next[i], cont)
        for j in range(J):
            if not evaluate[i, j]:
                continue
            if by_price:
                finite = _continuation(w_next[i], j, R, last, flush[i], salvage[i], arrive_next[i], cont)
            if finite:
                lo, hi = _poisson_window(lam[i, j], R - 1 if R > 0 else 0, pmf, cum, dcum)
                qj = q[j]
                for s in range(R + 1):
                    survival, sold = _sales(s, lo, hi, cum, dcum)
                    qj[s] = reward[i, j] * sold + survival * cont[0]  # sell out: C(0)
                _convolve_into(pmf, lo, hi, cont, qj, 1, R, R)  # sell d < s: C(s - d)
            if s_query[i] >= 0:
                q_out[i, j] = q[j, s_query[i]]
        best = np.empty(R + 1)
        arg = np.empty(R + 1, np.int8)
        for p in range(P):
            best[:] = -np.inf
            arg[:] = -1
            for j in range(J):
                if moves[i, p, j]:
                    qj = q[j]
                    for s in range(R + 1):
                        if qj[s] > best[s]:  # strict: ties go to the lowest price
                            best[s] = qj[s]
                            arg[s] = j
            for s in range(R + 1):
                w_out[i, s, p] = best[s]
                pol_out[i, s, p] = arg[s]
        pol_out[i, R + 1 :, :] = -1  # above the reach: no decision


@njit(parallel=True, cache=True)
def _forward_period(
    lam: np.ndarray,  # (n, J)
    prices: np.ndarray,  # (n, J)
    pol: np.ndarray,  # (n, S+1, P) int8 chosen index per (stock, previous-price state)
    dist: np.ndarray,  # (n, S+1, P) probability of (stock after arrivals, previous-price state)
    reach: np.ndarray,  # (n,)
    flush: np.ndarray,  # (n,) bool: leftover is written off at the end of this period (expiry or last period)
    arrive_next: np.ndarray,  # (n,)
    dist_out: np.ndarray,  # (n, S+1, K) out: next period's distribution, K = J (keep the price) or 1
    stats: np.ndarray,  # (n, 5) out: E[price], E[stock], E[units], E[revenue], E[units written off]
    state_mass: np.ndarray,  # (n, P) out: probability of each previous-price state
) -> None:
    """Push the exact state distribution through one period under a policy, with the period's expected figures.

    The probability mass is first gathered per (price charged, stock); then, per price, selling d < s units
    moves mass from s to s - d: in coordinates reversed from the highest such stock that is the backward pass's
    convolution, restricted to the stocks at which the price is charged.
    """
    n, J = lam.shape
    P = pol.shape[2]
    keep_price = dist_out.shape[2] > 1
    for i in prange(n):
        R = reach[i]
        top = R - 1 if R > 0 else 0
        dist_out[i] = 0.0
        state_mass[i] = 0.0
        mass = np.zeros((J, R + 1))
        for s in range(R + 1):
            for p in range(P):
                m = dist[i, s, p]
                if m > 0.0:
                    mass[pol[i, s, p], s] += m
                    state_mass[i, p] += m
        leftover = np.zeros((J if keep_price else 1, R + 1))
        pmf = np.empty(R + 1)
        cum = np.empty(R + 1)
        dcum = np.empty(R + 1)
        src = np.zeros(R + 4)
        dst = np.empty(R + 1)
        price = stock = units = revenue = 0.0
        for j in range(J):
            s_lo, s_hi = R + 1, -1
            for s in range(R + 1):
                if mass[j, s] > 0.0:
                    s_lo, s_hi = min(s_lo, s), s
            if s_hi < 0:
                continue  # price j is charged at no stock with positive probability
            lo, hi = _poisson_window(lam[i, j], top, pmf, cum, dcum)
            row = leftover[j] if keep_price else leftover[0]
            width = s_hi - s_lo
            for u in range(width + 1):
                m = mass[j, s_hi - u]
                src[u] = m
                if m == 0.0:
                    continue
                s = s_hi - u
                survival, sold = _sales(s, lo, hi, cum, dcum)
                price += m * prices[i, j]
                stock += m * s
                units += m * sold
                revenue += m * prices[i, j] * sold
                row[0] += m * survival  # sold out
            # Sold d < s: leftover x = s - d >= 1 is y = s_hi - x in reversed coordinates, y - d = s_hi - s.
            y_end = min(s_hi - 1, width + hi + 3)
            if y_end >= lo:
                dst[lo : y_end + 1] = 0.0
                _convolve_into(pmf, lo, hi, src, dst, 0, s_hi - 1, width)
                for y in range(lo, y_end + 1):
                    row[s_hi - y] += dst[y]
            src[: width + 1] = 0.0
        waste = 0.0
        for k in range(leftover.shape[0]):
            for x in range(R + 1):
                if flush[i]:
                    waste += leftover[k, x] * x
                    dist_out[i, arrive_next[i], k] += leftover[k, x]
                else:
                    dist_out[i, x + arrive_next[i], k] += leftover[k, x]
        stats[i, 0] = price
        stats[i, 1] = stock
        stats[i, 2] = units
        stats[i, 3] = revenue
        stats[i, 4] = waste
