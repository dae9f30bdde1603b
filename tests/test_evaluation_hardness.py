"""Hardness, with queries and without: the criterion training selects models by."""

import numpy as np

from conftest import mixture
from rfp import metrics
from rfp.evaluation import hardness


def _sphere(x):
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_best_scores_are_the_running_max_and_ignore_nan_rows():
  rng = np.random.default_rng(0)
  q, x = _sphere(rng.normal(size=(7, 8))), _sphere(rng.normal(size=(20000, 8)))
  x[5] = np.nan
  best = hardness.BestScores(q)
  best.update(x[:9000])
  best.update(x[9000:])
  np.testing.assert_allclose(best.best, np.nanmax(q @ x.T, axis=1), rtol=1e-6)


def test_probe_gaps_are_zero_for_real_rows_and_signed_by_difficulty():
  probes, _ = mixture(300, seed=1)
  real, _ = mixture(4000, seed=2)
  same, _ = mixture(4000, seed=3)
  gaps = hardness.probe_gaps(probes, real, same, [400, 4000])
  assert list(gaps) == [400, 4000] and max(abs(g) for g in gaps.values()) < 0.01
  # Rows scattered wider than real ones come less close to unseen rows: easier,
  # a negative gap; a copy of the probes themselves is as hard as it gets.
  wide, _ = mixture(4000, seed=3, spread=0.15)
  assert all(g < -0.01 for g in hardness.probe_gaps(probes, real, wide, [400, 4000]).values())
  copies = np.concatenate([probes, same[:3700]])
  assert hardness.probe_gaps(probes, real, copies, [4000])[4000] > 0.01


def test_criterion_prefers_a_trained_model_where_fd_prefers_a_gaussian():
  """A moment-matched Gaussian (what an early, under-trained flow looks like)
  scores a lower FD than a model that found the modes a little too wide; as
  distractors it is far worse, and the probe criterion says so."""
  probes, _ = mixture(500, seed=1)
  real, _ = mixture(5000, seed=2)
  trained, _ = mixture(5000, seed=3, spread=0.13)
  held_out, _ = mixture(5000, seed=4)
  mean, cov = metrics.moments(real)
  gaussian = _sphere(np.random.default_rng(5).multivariate_normal(mean, cov, 5000))
  assert metrics.frechet_distance(gaussian, held_out) < metrics.frechet_distance(trained, held_out)
  sizes = [500, 5000]
  assert (hardness.probe_criterion(hardness.probe_gaps(probes, real, trained, sizes))
          < hardness.probe_criterion(hardness.probe_gaps(probes, real, gaussian, sizes)))
