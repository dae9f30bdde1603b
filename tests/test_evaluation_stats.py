"""Standard errors of figures that rest on a query sample, checked by simulation."""

import numpy as np
import pytest

from rfp.evaluation import stats


def test_standard_error_of_one_draw_is_binomial():
  assert stats.standard_error(0.5, 100) == pytest.approx(0.05)
  assert stats.standard_error(0.0, 100) == 0.0
  # Repeats add their own spread: std² / repeats.
  assert stats.standard_error(0.5, 100, std=0.02, repeats=2) == pytest.approx(
      np.sqrt(0.0025 + 0.0002))


def test_standard_error_matches_the_spread_of_fresh_query_samples():
  rng = np.random.default_rng(0)
  rates = (rng.random((4000, 500)) < 0.72).mean(1)  # 4,000 samples of 500 queries.
  assert rates.std() == pytest.approx(stats.standard_error(0.72, 500), rel=0.05)


def test_paired_error_is_smaller_than_unpaired_for_correlated_flags():
  rng = np.random.default_rng(1)
  # Two curves on the same queries: the second is hard wherever the first is,
  # and on a few more queries.
  a_q = rng.random(2000) < 0.10
  b_q = a_q | (rng.random(2000) < 0.02)
  paired = stats.paired_standard_error(b_q[None], a_q[None])
  unpaired = np.hypot(stats.standard_error(b_q.mean(), 2000),
                      stats.standard_error(a_q.mean(), 2000))
  assert paired == pytest.approx(np.std(b_q.astype(float) - a_q, ddof=1) / np.sqrt(2000))
  assert paired < unpaired / 2
  assert stats.paired_standard_error(a_q[None], a_q[None]) == 0.0


def test_paired_error_matches_the_spread_of_fresh_query_samples():
  rng = np.random.default_rng(2)
  diffs, errors = [], []
  for _ in range(2000):
    a_q = rng.random(300) < 0.2
    b_q = np.where(rng.random(300) < 0.9, a_q, rng.random(300) < 0.3)
    diffs.append(b_q.mean() - a_q.mean())
    errors.append(stats.paired_standard_error(b_q[None], a_q[None]))
  assert np.std(diffs) == pytest.approx(np.mean(errors), rel=0.07)


def test_paired_error_over_repeats_adds_each_sides_draws():
  a_rq = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool)
  b_rq = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)
  d_q = b_rq.mean(0) - a_rq.mean(0)  # [0, 0.5, 0, 0]
  draws = np.var([0.25, 0.5], ddof=1) / 2
  assert stats.paired_standard_error(b_rq, a_rq) == pytest.approx(
      np.sqrt(np.var(d_q, ddof=1) / 4 + draws))


def test_pack_round_trips_any_count():
  flags = np.random.default_rng(3).random(13) < 0.5
  packed = stats.pack(flags)
  assert packed['queries'] == 13 and len(packed['bits']) == 4  # Two bytes of base64.
  np.testing.assert_array_equal(stats.unpack(packed), flags)
