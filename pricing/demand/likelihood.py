"""The demand model's penalised censored Poisson likelihood, its Hessian by blocks and the Laplace posterior."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, special

from pricing.demand.config import ETA_BOUNDS, INTERCEPT_CATEGORY_SD, RIDGE, VARIANCE_CEILING
from pricing.demand.design import _Design, _Layout


def _log_survival(c: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P(D >= c) for D ~ Poisson(lam) and its derivative in eta = log(lam), for c >= 1.

    d/dlam P(D >= c) = P(D = c - 1), so d log S / d eta = lam * pmf(c - 1) / S. Where S underflows
    (lam far below c) the leading term P(D = c) stands in for S, which is what S tends to.
    """
    with np.errstate(divide="ignore"):
        log_s = np.log(special.pdtrc(c - 1, lam))
    tiny = ~np.isfinite(log_s) | (log_s < -600)
    log_s = np.where(tiny, c * eta - lam - special.gammaln(c + 1) + np.log1p(lam / (c + 1)), log_s)
    log_pmf = (c - 1) * eta - lam - special.gammaln(c)
    return log_s, np.exp(eta + log_pmf - log_s)


def _loglik(eta: np.ndarray, y: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row log-likelihood and its first and second derivatives in eta."""
    eta = np.clip(eta, *ETA_BOUNDS)
    lam = np.exp(eta)
    ll = y * eta - lam - special.gammaln(y + 1)
    d1 = y - lam
    d2 = -lam
    if censored.any():
        c = y[censored]
        log_s, g = _log_survival(c, eta[censored], lam[censored])
        ll[censored] = log_s
        d1[censored] = g
        d2[censored] = g * (c - lam[censored] - g)  # from d/deta [lam*pmf(c-1)] = (c - lam) * lam*pmf(c-1)
    return ll, d1, d2


def _penalty_matrix(
    layout: _Layout, cat_of_sku: np.ndarray, hyper: dict[str, float], pooling: bool
) -> sparse.csr_matrix:
    """Negative log prior as 1/2 theta' P theta: differences to the parent level, weighted by 1/variance."""
    c = layout.n_cat
    rows, cols, vals, weights = [], [], [], []

    def diff(child: np.ndarray, parent: np.ndarray | None, weight: float) -> None:
        start = len(weights)
        k = np.arange(start, start + len(child))
        rows.extend([k, k] if parent is not None else [k])
        cols.extend([child, parent] if parent is not None else [child])
        vals.extend([np.ones(len(child)), -np.ones(len(child))] if parent is not None else [np.ones(len(child))])
        weights.extend([weight] * len(child))

    a, b = layout.index("a"), layout.index("b")
    a_cat, b_cat = layout.index("a_cat"), layout.index("b_cat")
    diff(a, a_cat[cat_of_sku], 1.0 / hyper["sigma_a2"])
    if pooling:
        diff(b, b_cat[cat_of_sku], 1.0 / hyper["tau2"])
        diff(b_cat, np.repeat(layout.index("b_global"), c), 1.0 / hyper["omega2"])
    else:  # nearly flat: only keeps a SKU without any price variation finite
        diff(b, None, 1.0 / VARIANCE_CEILING)
        diff(np.concatenate([b_cat, layout.index("b_global")]), None, 1.0 / VARIANCE_CEILING)
    diff(a_cat, np.repeat(layout.index("a_global"), c), 1.0 / INTERCEPT_CATEGORY_SD**2)
    shared = np.concatenate([layout.index(n) for n in ("a_global", "weekday", "trend", "features", "promo")])
    diff(shared, None, RIDGE)
    D = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(weights), layout.size)
    )
    return (D.T @ sparse.diags(np.asarray(weights)) @ D).tocsr()


def _objective(theta: np.ndarray, design: _Design, penalty: sparse.csr_matrix, phi: float) -> tuple[float, np.ndarray]:
    ll, d1, _ = _loglik(design.eta(theta), design.y, design.censored)
    p_theta = penalty @ theta
    value = -ll.sum() / phi + 0.5 * theta @ p_theta
    return float(value), -design.transpose_times(d1) / phi + p_theta


@dataclass
class _Blocks:
    """The Hessian as H = [[A, B], [B', D]]: A is 2x2 per SKU (a, b), D the few shared parameters."""

    haa: np.ndarray
    hab: np.ndarray
    hbb: np.ndarray
    Ba: np.ndarray  # (S, K)
    Bb: np.ndarray
    D: np.ndarray  # (K, K)

    def eliminate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Block elimination: A^-1 (aa, ab, bb entries per SKU), det A, G = A^-1 B (a rows, b rows),
        and the Schur complement S = D - B'A^-1 B on the shared parameters."""
        det = self.haa * self.hbb - self.hab**2
        inv_aa, inv_bb, inv_ab = self.hbb / det, self.haa / det, -self.hab / det
        Ga = inv_aa[:, None] * self.Ba + inv_ab[:, None] * self.Bb
        Gb = inv_ab[:, None] * self.Ba + inv_bb[:, None] * self.Bb
        schur = self.D - self.Ba.T @ Ga - self.Bb.T @ Gb
        return np.stack([inv_aa, inv_ab, inv_bb]), det, Ga, Gb, schur

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """H^-1 rhs by block elimination (Schur complement on the shared parameters)."""
        s = len(self.haa)
        (inv_aa, inv_ab, inv_bb), _, Ga, Gb, schur = self.eliminate()
        ra, rb, rd = rhs[:s], rhs[s : 2 * s], rhs[2 * s :]
        v = np.linalg.solve(schur, rd - Ga.T @ ra - Gb.T @ rb)
        return np.concatenate([inv_aa * ra + inv_ab * rb - Ga @ v, inv_ab * ra + inv_bb * rb - Gb @ v, v])

    def frozen(self, mask: np.ndarray) -> _Blocks:
        """The Hessian with the masked parameters' rows and columns replaced by the identity."""
        s = len(self.haa)
        fa, fb, fd = mask[:s], mask[s : 2 * s], mask[2 * s :]
        keep_d = ~fd
        D = self.D * keep_d[:, None] * keep_d[None, :] + np.diag(fd.astype(float))
        return _Blocks(
            haa=np.where(fa, 1.0, self.haa),
            hab=np.where(fa | fb, 0.0, self.hab),
            hbb=np.where(fb, 1.0, self.hbb),
            Ba=self.Ba * ~fa[:, None] * keep_d[None, :],
            Bb=self.Bb * ~fb[:, None] * keep_d[None, :],
            D=D,
        )


@dataclass
class _PenaltyBlocks:
    """The prior precision P split like the Hessian (it has no a-b cross terms)."""

    matrix: sparse.csr_matrix
    paa: np.ndarray
    pbb: np.ndarray
    B: np.ndarray  # (2S, K)
    D: np.ndarray

    @classmethod
    def of(cls, penalty: sparse.csr_matrix, n_sku: int) -> _PenaltyBlocks:
        s = n_sku
        diag = penalty.diagonal()
        return cls(
            penalty, diag[:s], diag[s : 2 * s], penalty[: 2 * s, 2 * s :].toarray(), penalty[2 * s :, 2 * s :].toarray()
        )


def _hessian(theta: np.ndarray, design: _Design, penalty: _PenaltyBlocks, phi: float) -> _Blocks:
    """Observed information of the penalised objective, assembled block by block."""
    lay = design.layout
    _, _, d2 = _loglik(design.eta(theta), design.y, design.censored)
    w = np.maximum(-d2, 0.0) / phi  # a censored day can have slightly negative curvature; clip for a PD step
    s, k = lay.n_sku, lay.size - 2 * lay.n_sku
    data = lay.data.start - 2 * s  # first data column inside the shared block
    Ba, Bb, D = np.zeros((s, k)), np.zeros((s, k)), np.zeros((k, k))
    Ba[:, data:] = design.members @ (w[:, None] * design.Z)
    Bb[:, data:] = design.members @ ((w * design.x)[:, None] * design.Z)
    root = np.sqrt(w)[:, None] * design.Z
    D[data:, data:] = root.T @ root  # q'q is a symmetric rank-k update: ~10x faster than Z'(wZ)
    return _Blocks(
        haa=np.bincount(design.sku, weights=w, minlength=s) + penalty.paa,
        hab=np.bincount(design.sku, weights=w * design.x, minlength=s),
        hbb=np.bincount(design.sku, weights=w * design.x**2, minlength=s) + penalty.pbb,
        Ba=Ba + penalty.B[:s],
        Bb=Bb + penalty.B[s:],
        D=D + penalty.D,
    )


@dataclass
class _Posterior:
    variances: np.ndarray  # diagonal of H^-1 (all parameters)
    logdet: float  # log det H, for the Laplace approximation of the marginal likelihood


def _posterior(h: _Blocks) -> _Posterior:
    """Diagonal of the inverse Hessian, the shared parameters' covariance and log det H, by blocks.

    With S = D - B'A^-1 B (Schur complement): cov_shared = S^-1,
    var(sku) = A^-1 + (A^-1 B) S^-1 (A^-1 B)', log det H = sum log det A_s + log det S.
    Exact, and linear in the number of SKUs.
    """
    (inv_aa, _, inv_bb), det, Ga, Gb, schur = h.eliminate()
    shared_cov = np.linalg.inv(schur)
    variances = np.concatenate(
        [
            inv_aa + np.einsum("ij,ij->i", Ga @ shared_cov, Ga),
            inv_bb + np.einsum("ij,ij->i", Gb @ shared_cov, Gb),
            np.diag(shared_cov),
        ]
    )
    return _Posterior(variances, float(np.sum(np.log(det)) + np.linalg.slogdet(schur)[1]))
