"""Where queries are cut from and which row each should find."""

import jax
import numpy as np

from rfp.audio import queries
from rfp.audio.embed import n_windows
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT


def test_query_starts_are_off_grid_and_their_truth_is_the_nearest_window():
  bounds = np.array([[0, 7 * SAMPLE_RATE], [7 * SAMPLE_RATE, 12 * SAMPLE_RATE]])
  starts, truth, off_grid = queries.query_starts(jax.random.key(0), bounds, 500)
  rows_k = [n_windows(int(b - a)) for a, b in bounds]
  track = (starts >= bounds[1, 0]).astype(int)
  local = starts - bounds[track, 0]
  row = truth - np.where(track == 1, rows_k[0], 0)
  assert np.all(local % HOP != 0) and np.all(local + SEGMENT <= bounds[track, 1] - bounds[track, 0])
  assert np.all((row >= 0) & (row < np.take(rows_k, track)))
  np.testing.assert_allclose(off_grid, np.abs(local - row * HOP) / SAMPLE_RATE)
  assert 0 < off_grid.min() and off_grid.max() <= 0.25
  # No other window of the track starts nearer.
  assert np.all(off_grid * SAMPLE_RATE <= np.abs(local[:, None] - np.arange(14)[None] * HOP).min(1) + 1e-9)
  again = queries.query_starts(jax.random.key(0), bounds, 500)
  np.testing.assert_array_equal(again[0], starts)


def test_multi_segment_queries_start_where_every_segment_has_its_row():
  bounds = np.array([[0, 7 * SAMPLE_RATE], [7 * SAMPLE_RATE, 19 * SAMPLE_RATE]])
  rows_k = [n_windows(int(b - a)) for a, b in bounds]
  segments = 19  # 10 s: only the second track is long enough.
  starts, truth, off_grid = queries.query_starts(jax.random.key(1), bounds, 200, segments)
  assert np.all(starts >= bounds[1, 0]) and np.all(truth >= rows_k[0])
  local, row = starts - bounds[1, 0], truth - rows_k[0]
  assert np.all(local + queries.span(segments) <= bounds[1, 1] - bounds[1, 0])
  assert np.all(row + segments <= rows_k[1])
  assert np.all(local % HOP != 0) and off_grid.max() <= 0.25
  np.testing.assert_allclose(off_grid, np.abs(local - row * HOP) / SAMPLE_RATE)
