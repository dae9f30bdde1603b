"""Fidelity metrics against closed forms and limiting cases."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from rfp import metrics


def _random_cov(d, rng):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def _closed_form_fd(mu1, c1, mu2, c2):
  cross = scipy.linalg.sqrtm(c1 @ c2).real
  return float(np.sum((mu1 - mu2)**2) + np.trace(c1 + c2 - 2 * cross))


def test_frechet_from_moments_matches_closed_form():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  c1, c2 = _random_cov(6, rng), _random_cov(6, rng)
  np.testing.assert_allclose(metrics.frechet_distance_from_moments(mu1, c1, mu2, c2),
                             _closed_form_fd(mu1, c1, mu2, c2), rtol=1e-8)
  assert metrics.frechet_distance_from_moments(mu1, c1, mu1, c1) == pytest.approx(0, abs=1e-9)


def test_frechet_between_gaussian_samples_approaches_closed_form():
  rng = np.random.default_rng(1)
  mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -0.5, 0.2])
  c1, c2 = _random_cov(4, rng), _random_cov(4, rng)
  x = rng.multivariate_normal(mu1, c1, size=200_000)
  y = rng.multivariate_normal(mu2, c2, size=200_000)
  assert metrics.frechet_distance(x, y) == pytest.approx(_closed_form_fd(mu1, c1, mu2, c2),
                                                         rel=0.02)


def test_kde_matches_scipy():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3))
  y = rng.normal(size=(200, 3))
  np.testing.assert_allclose(metrics.GaussianKDE(x).logpdf(y),
                             scipy.stats.gaussian_kde(x.T).logpdf(y.T), rtol=1e-6, atol=1e-8)


def test_js_of_two_samples_of_one_distribution_is_near_zero():
  rng = np.random.default_rng(3)
  cov = _random_cov(3, rng)
  x = rng.multivariate_normal(np.zeros(3), cov, size=3000)
  y = rng.multivariate_normal(np.zeros(3), cov, size=3000)
  assert metrics.js_divergence(x, y) < 0.02


def test_js_of_disjoint_sets_is_ln2():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(2000, 5))
  assert metrics.js_divergence(x, x + 100.0) == pytest.approx(np.log(2), abs=1e-6)


def test_js_grows_with_separation():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
  js = [metrics.js_divergence(x, y + shift) for shift in (0.0, 0.5, 1.5, 4.0)]
  assert js == sorted(js)
  assert js[-1] > 0.6


def test_knn_radii_brute_force():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(50, 4))
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  expected = np.sort(d, axis=1)[:, 3]  # Column 0 is the row itself.
  np.testing.assert_allclose(metrics.knn_radii(x, k=3, chunk_rows=7), expected, rtol=1e-6)


def test_prdc_limits():
  rng = np.random.default_rng(7)
  x, y = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
  same = metrics.prdc(x, x)
  assert same['precision'] == same['recall'] == same['coverage'] == 1.0
  alike = metrics.prdc(x, y)
  assert alike['precision'] > 0.8 and alike['recall'] > 0.8 and alike['coverage'] > 0.8
  assert alike['density'] == pytest.approx(1.0, abs=0.15)
  apart = metrics.prdc(x, y + 50)
  assert apart == {'precision': 0.0, 'recall': 0.0, 'density': 0.0, 'coverage': 0.0}


def test_prdc_separates_fidelity_from_diversity():
  """A collapsed model is precise (inside the data) but recalls little of it."""
  rng = np.random.default_rng(8)
  real = rng.normal(size=(2000, 2))
  collapsed = 0.1 * rng.normal(size=(2000, 2))
  m = metrics.prdc(real, collapsed)
  assert m['precision'] > 0.95 and m['recall'] < 0.3 and m['coverage'] < 0.3


def test_fidelity_of_a_moment_matched_gaussian():
  """FD sees only moments: a matched Gaussian scores FD ~ 0 on structured data,
  where JS and precision still see the difference."""
  rng = np.random.default_rng(9)
  centres = 4 * rng.normal(size=(6, 8))
  real = centres[rng.integers(6, size=2000)] + 0.3 * rng.normal(size=(2000, 8))
  real2 = centres[rng.integers(6, size=2000)] + 0.3 * rng.normal(size=(2000, 8))
  mean, cov = metrics.moments(real)
  matched = rng.multivariate_normal(mean, cov, size=2000)
  axes = metrics.principal_axes(real, dims=4)
  real_stats = metrics.set_stats(real, axes)
  floor = metrics.fidelity(metrics.set_stats(real2, axes), real_stats)
  gaussian = metrics.fidelity(metrics.set_stats(matched, axes), real_stats)
  assert gaussian['fd'] < 0.05 * np.trace(cov)
  assert gaussian['js'] > floor['js'] + 0.2
  assert gaussian['precision'] < floor['precision'] - 0.3


def test_principal_axes_are_orthonormal_and_ordered():
  rng = np.random.default_rng(10)
  x = rng.normal(size=(2000, 5)) * np.array([5.0, 1.0, 3.0, 0.5, 2.0])
  mean, axes = metrics.principal_axes(x, dims=3)
  np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-10)
  assert np.argmax(np.abs(axes[0])) == 0 and np.argmax(np.abs(axes[1])) == 2
  p = metrics.project(x, (mean, axes))
  assert p.shape == (2000, 3) and np.all(np.diff(p.var(0)) < 0)


def test_fidelity_from_set_stats_matches_the_direct_metrics():
  """Precomputed per-set statistics give the same figures as computing each metric afresh."""
  rng = np.random.default_rng(11)
  real, other = rng.normal(size=(600, 6)), 1.2 * rng.normal(size=(500, 6)) + 0.3
  axes = metrics.principal_axes(real, dims=3)
  got = metrics.fidelity(metrics.set_stats(other, axes), metrics.set_stats(real, axes), seed=4)
  assert got['fd'] == pytest.approx(metrics.frechet_distance(other, real), rel=1e-12)
  assert got['js'] == pytest.approx(
      metrics.js_divergence(metrics.project(other, axes), metrics.project(real, axes), seed=4), rel=1e-12)
  for key, value in metrics.prdc(real, other).items():
    assert got[key] == pytest.approx(value, rel=1e-12)
