"""Temporal statistics of tracks and the AR-noise weight fit (no JAX)."""

import numpy as np
import pytest

from rfp import rows as rows_lib, temporal


def _ar_track(length, rate, dim, rng):
  """Rows of a stationary AR(1) process of `rate` in `dim` dimensions."""
  x = np.empty((length, dim))
  x[0] = rng.normal(size=dim)
  for t in range(1, length):
    x[t] = rate * x[t - 1] + np.sqrt(1 - rate**2) * rng.normal(size=dim)
  return x


def _tracks(parts):
  """(row source, bounds) of tracks given as arrays, one after another."""
  bounds = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
  return rows_lib.ArrayRows(np.concatenate(parts).astype(np.float32)), bounds


def test_lag_similarity_of_ar_tracks_is_rate_to_the_lag():
  rng = np.random.default_rng(0)
  rates = (0.95, 0.6, 0.0)
  rows, bounds = _tracks([_ar_track(600, a, 512, rng) for a in rates])
  sim_tl = temporal.lag_similarity(rows, bounds)
  expected = np.asarray(rates)[:, None] ** np.asarray(temporal.LAGS)[None, :]
  np.testing.assert_allclose(sim_tl, expected, atol=0.06)
  # Pairs never cross tracks: a short track has no similarity beyond its length.
  rows, bounds = _tracks([_ar_track(10, 0.9, 64, rng), _ar_track(50, 0.9, 64, rng)])
  sim_tl = temporal.lag_similarity(rows, bounds)
  assert np.isnan(sim_tl[0, temporal.LAGS.index(16)]) and np.isfinite(sim_tl[1, 4])


def test_repetition_finds_repeated_windows_only_far_enough_apart():
  rng = np.random.default_rng(1)
  base = _ar_track(40, 0.5, 256, rng)
  looped = np.concatenate([base, rng.normal(size=(20, 256)), base[:20]])
  plain = rng.normal(size=(80, 256))
  rows, bounds = _tracks([looped, plain])
  best, lag = temporal.repetition(rows, bounds, min_lag=8)
  assert best.shape == lag.shape == (160,)
  np.testing.assert_allclose(best[:20], 1.0, atol=1e-5)  # Their copies are 60 rows later.
  np.testing.assert_array_equal(lag[:20], 60)
  np.testing.assert_array_equal(lag[60:80], 60)
  assert best[80:].max() < 0.4  # Unrelated windows; the neighbours within 8 are excluded.
  assert lag[80:].min() >= 8
  # A window's own neighbourhood never counts, however similar.
  rows, bounds = _tracks([np.repeat(base[:1], 10, axis=0)])
  assert np.isnan(temporal.repetition(rows, bounds, min_lag=10)[0]).all()


def test_repeat_statistics_read_each_tracks_share_distance_and_closeness():
  rng = np.random.default_rng(3)
  base = rng.normal(size=(30, 256))
  looped = np.concatenate([base, base + 0.5 * rng.normal(size=(30, 256)) / 16])
  rows, bounds = _tracks([looped, rng.normal(size=(50, 256))])
  best, lag = temporal.repetition(rows, bounds)
  first, second = temporal.repeat_statistics(best, lag, bounds, [0, 1], strong=0.9)
  assert first['share'] == 1.0 and first['lags'][0] == first['lags'][-1] == 30
  assert 0.9 < first['levels'][0] <= first['levels'][-1] <= 1.0
  assert second == {'share': 0.0, 'lags': [], 'levels': []}
  # The match's distance drifts by a row between neighbours half the time here.
  assert temporal.offset_steps(np.ones(5), np.array([30, 31, 31, 32, 32]), 0.5) == 0.5


def test_summary_spreads_and_lengths():
  rng = np.random.default_rng(2)
  rows, bounds = _tracks([_ar_track(n, 0.8, 128, rng) for n in (100, 200, 300)])
  s = temporal.summary(rows, bounds)
  assert s['tracks'] == 3
  assert s['lengths'] == {'mean': 200.0, 'min': 100, 'max': 300,
                          'quantiles': {str(q): float(np.quantile([100, 200, 300], q))
                                        for q in temporal.QUANTILES}}
  lag = s['lag_similarity']
  assert lag['lags'] == list(temporal.LAGS)
  assert lag['q10'][0] <= lag['q50'][0] <= lag['q90'][0]
  assert abs(lag['mean'][0] - 0.8) < 0.05
  assert set(s['repetition']['share_above']) == {str(t) for t in temporal.THRESHOLDS}
  assert set(s['repetition']['lag_quantiles']) == {str(q) for q in temporal.QUANTILES}
  sub = temporal.summary(rows, bounds, tracks=[2])
  assert sub['tracks'] == 1 and sub['lengths']['mean'] == 300.0


@pytest.mark.parametrize('weights', [(0.3, 0.5, 0.0), (0.0, 0.9, 0.0), (0.6, 0.0, 0.0),
                                     (0.0, 0.5, 0.3)])
def test_fit_recovers_known_weights(weights):
  rates, lags = (0.5, 0.95), temporal.LAGS
  target = temporal.component_correlation(rates, lags) @ np.asarray(weights)
  np.testing.assert_allclose(temporal.fit_weights(target, lags, rates), weights, atol=1e-3)


def test_the_moving_average_drops_lag_one_faster_than_any_ar_process():
  rates, lags = (0.2, 0.5, 0.8, 0.95, 1.0), temporal.LAGS
  target = np.array([0.6, 0.2, 0.15, 0.1, 0.05, 0.0])  # A steep first step, as real tracks.
  w = temporal.fit_weights(target, lags, rates)
  assert w[-1] > 0.3
  assert abs(temporal.component_correlation(rates, lags)[0] @ w - 0.6) < 0.02
  ar_only = temporal.fit_weights(target[1:], lags[1:], rates)[:-1]
  assert temporal.ar_correlation(rates, lags)[0] @ ar_only < 0.5  # Without it, lag 1 falls short.


def test_fit_keeps_the_noise_variance():
  rates = (0.5, 0.9, 1.0)
  w = temporal.fit_weights(np.ones(len(temporal.LAGS)), temporal.LAGS, rates)
  assert np.all(w >= 0) and w.sum() <= 1 + 1e-9
  np.testing.assert_allclose(w, [0, 0, 1, 0], atol=1e-3)  # Fully correlated: a constant per track.
  assert temporal.fit_weights(np.zeros(6), temporal.LAGS, rates).sum() < 1e-3  # White noise.


def test_noise_targets_invert_the_response():
  rho = np.array([0.0, 0.5, 0.9, 1.0])
  sim = np.array([0.1, 0.3, 0.6, 1.0])
  np.testing.assert_allclose(temporal.noise_targets([0.3, 0.45, 0.05, 2.0], rho, sim),
                             [0.5, 0.7, 0.0, 1.0])


def test_profiles_group_tracks_by_how_fast_they_move():
  sim_tl = np.array([[0.9, 0.8], [0.1, 0.0], [0.5, 0.4], [0.3, np.nan]])
  np.testing.assert_array_equal(temporal.profile_groups(sim_tl, 2), [1, 0, 1, 0])
  np.testing.assert_array_equal(temporal.profile_groups(sim_tl, 4), [3, 0, 2, 1])
