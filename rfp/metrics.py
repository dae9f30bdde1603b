"""Distribution metrics between embedding sets, in plain numpy/scipy."""

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
