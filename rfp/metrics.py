"""Distribution metrics between embedding sets, in plain numpy/scipy."""

from typing import NamedTuple

import numpy as np


def moments(x_nd, chunk_rows=1 << 16):
  """Mean `[d]` and covariance `[d, d]` in float64, read in chunks."""
  n, d = x_nd.shape
  s1 = np.zeros(d)
  s2 = np.zeros((d, d))
  for i in range(0, n, chunk_rows):
    c = np.asarray(x_nd[i:i + chunk_rows], np.float64)
    s1 += c.sum(0)
    s2 += c.T @ c
  mean = s1 / n
  cov = (s2 - n * np.outer(mean, mean)) / max(n - 1, 1)
  return mean, cov


def _sqrtm_psd(a):
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_moments(mu1, cov1, mu2, cov2):
  """||mu1-mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), stable for PSD inputs."""
  s1 = _sqrtm_psd(cov1)
  cross = _sqrtm_psd(s1 @ cov2 @ s1)
  fd = np.sum((mu1 - mu2)**2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(cross)
  return float(max(fd, 0.0))


def frechet_distance(x_nd, y_md):
  """Fréchet distance between the Gaussians fitted to two sets of rows."""
  return frechet_distance_from_moments(*moments(x_nd), *moments(y_md))


# The paper's fidelity protocol (Sec. 4.2): JS between KDEs on the real set's
# top principal components; Naeem et al. (2020) use k = 5 for their k-NN radii.
PCA_DIMS = 20
PRDC_K = 5


def principal_axes(x_nd, dims=PCA_DIMS):
  """(mean `[d]`, top principal axes `[dims, d]`) of a set of rows."""
  mean, cov = moments(x_nd)
  _, v = np.linalg.eigh(cov)  # Ascending eigenvalues.
  dims = min(dims, x_nd.shape[1])
  return mean, v[:, ::-1][:, :dims].T


def project(x_nd, axes):
  """Rows in the coordinates of `principal_axes`: `[n, d] -> [n, dims]`."""
  mean, comps = axes
  return (np.asarray(x_nd, np.float64) - mean) @ comps.T


class GaussianKDE:
  """A Gaussian kernel density estimate with Scott's bandwidth (as scipy's).

  Kernel covariance is `n^(-2/(d+4))` times the sample covariance. Densities
  are evaluated in whitened coordinates with one matrix product per chunk,
  which is far faster than scipy's per-point loop for thousands of rows.
  """

  def __init__(self, x_nd):
    x_nd = np.asarray(x_nd, np.float64)
    n, d = x_nd.shape
    if n <= d:
      raise ValueError(f'a {d}-d KDE needs more than {d} points, got {n}')
    factor = n**(-1.0 / (d + 4))
    cov = np.cov(x_nd, rowvar=False) * factor**2
    self._chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / d * np.eye(d))
    self._w = self._whiten(x_nd)
    self._w_sq = (self._w**2).sum(1)
    self._log_norm = (-0.5 * d * np.log(2 * np.pi) - np.log(np.diag(self._chol)).sum()
                      - np.log(n))

  def _whiten(self, x_nd):
    return np.linalg.solve(self._chol, np.asarray(x_nd, np.float64).T).T

  def logpdf(self, y_md, chunk_rows=2048):
    w = self._whiten(y_md)
    out = np.empty(len(w))
    for i in range(0, len(w), chunk_rows):
      c = w[i:i + chunk_rows]
      sq = (c**2).sum(1)[:, None] + self._w_sq[None, :] - 2 * c @ self._w.T
      out[i:i + chunk_rows] = _logsumexp(-0.5 * np.maximum(sq, 0), axis=1)
    return out + self._log_norm

  def sample(self, n, rng):
    """`n` draws from the estimated density: a data point plus kernel noise."""
    picks = self._w[rng.integers(len(self._w), size=n)]
    return (picks + rng.standard_normal(picks.shape)) @ self._chol.T


def _logsumexp(a, axis):
  top = a.max(axis=axis, keepdims=True)
  return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def js_divergence(p_nd, q_md, samples=5_000, seed=0):
  """Jensen-Shannon divergence in nats between Gaussian KDEs of two sets.

  Monte-Carlo estimate with `samples` draws from each KDE:
  JS = 1/2 E_p[log 2p/(p+q)] + 1/2 E_q[log 2q/(p+q)], 0 for equal densities
  and ln 2 for disjoint ones. Each term is at most ln 2, so the estimate
  stays in range even where one density underflows.

  This is the divergence between the two *estimates*: with Scott's bandwidth
  in many dimensions each KDE peaks at its own rows, so two finite samples
  of one distribution score well above 0. Compare against such a pair.
  """
  return kde_js_divergence(GaussianKDE(p_nd), GaussianKDE(q_md), samples, seed)


def kde_js_divergence(kde_p, kde_q, samples=5_000, seed=0):
  """`js_divergence` between two fitted `GaussianKDE`s."""
  rng = np.random.default_rng(seed)
  from_p, from_q = kde_p.sample(samples, rng), kde_q.sample(samples, rng)
  # log(2p / (p + q)) = ln 2 - softplus(log q - log p).
  term_p = np.log(2) - np.logaddexp(0, kde_q.logpdf(from_p) - kde_p.logpdf(from_p))
  term_q = np.log(2) - np.logaddexp(0, kde_p.logpdf(from_q) - kde_q.logpdf(from_q))
  return float(np.clip(0.5 * term_p.mean() + 0.5 * term_q.mean(), 0.0, np.log(2)))


def _sq_dists(a_nd, b_md):
  d = (a_nd**2).sum(1)[:, None] + (b_md**2).sum(1)[None, :] - 2 * a_nd @ b_md.T
  return np.maximum(d, 0)


def knn_radii(x_nd, k=PRDC_K, chunk_rows=1024):
  """Distance from each row to its k-th nearest other row of the same set."""
  x_nd = np.asarray(x_nd, np.float64)
  out = np.empty(len(x_nd))
  for i in range(0, len(x_nd), chunk_rows):
    d = _sq_dists(x_nd[i:i + chunk_rows], x_nd)
    out[i:i + chunk_rows] = np.partition(d, k, axis=1)[:, k]  # Index 0 is the row itself.
  return np.sqrt(out)


def prdc(real_nd, fake_md, k=PRDC_K, chunk_rows=1024, radii=None):
  """Precision, recall, density and coverage of `fake` against `real` (Naeem et al. 2020).

  Each row owns a ball reaching its k-th nearest neighbour in its own set.
  Precision: share of fake rows inside some real ball. Recall: share of real
  rows inside some fake ball. Density: mean count of real balls holding a fake
  row, divided by k (1 when fake matches real). Coverage: share of real balls
  holding at least one fake row. `radii` (real's, fake's `knn_radii`) skips
  recomputing them for a set compared more than once.
  """
  real_nd = np.asarray(real_nd, np.float64)
  fake_md = np.asarray(fake_md, np.float64)
  r_real, r_fake = radii if radii is not None else (knn_radii(real_nd, k, chunk_rows),
                                                    knn_radii(fake_md, k, chunk_rows))
  in_real_balls = np.zeros(len(fake_md), np.int64)
  real_recalled = np.zeros(len(real_nd), bool)
  real_nearest = np.full(len(real_nd), np.inf)
  for i in range(0, len(fake_md), chunk_rows):
    d = np.sqrt(_sq_dists(fake_md[i:i + chunk_rows], real_nd))  # [chunk, n_real]
    in_real_balls[i:i + chunk_rows] = (d <= r_real[None, :]).sum(1)
    real_recalled |= (d <= r_fake[i:i + chunk_rows, None]).any(0)
    real_nearest = np.minimum(real_nearest, d.min(0))
  return {'precision': float((in_real_balls > 0).mean()),
          'recall': float(real_recalled.mean()),
          'density': float(in_real_balls.sum() / (k * len(fake_md))),
          'coverage': float((real_nearest <= r_real).mean())}


class SetStats(NamedTuple):
  """What the fidelity metrics need of one set, computed once however often it is compared."""
  x_nd: np.ndarray     # [n, d] float64 rows.
  mean: np.ndarray     # [d]
  cov: np.ndarray      # [d, d]
  radii: np.ndarray    # [n] k-NN radii (PRDC).
  kde: GaussianKDE     # On the principal axes (JS).


def set_stats(x_nd, axes, k=PRDC_K):
  """`SetStats` of a set of rows; `axes` as `principal_axes` returns them."""
  x_nd = np.asarray(x_nd, np.float64)
  return SetStats(x_nd, *moments(x_nd), knn_radii(x_nd, k), GaussianKDE(project(x_nd, axes)))


def fidelity(x, real, seed=0):
  """FD, JS (on the axes both `SetStats` were made with) and PRDC of `x` against `real`."""
  return {'fd': frechet_distance_from_moments(x.mean, x.cov, real.mean, real.cov),
          'js': kde_js_divergence(x.kde, real.kde, seed=seed),
          **prdc(real.x_nd, x.x_nd, radii=(real.radii, x.radii))}
