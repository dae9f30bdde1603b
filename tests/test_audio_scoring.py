"""Exact top-1 search and the hit rates metadata.json reports."""

import jax
import numpy as np

from rfp.audio import scoring


def test_exact_top1_is_the_best_reference_unless_a_distractor_ties_or_outscores_it():
  reference = np.eye(4, dtype=np.float32)
  queries = np.array([[1, 0.1, 0, 0], [0, 0, 1, 0]], np.float32)
  np.testing.assert_array_equal(scoring.exact_top1(queries, reference), [0, 2])
  below, tie, above = (np.array([[0, 0, 1, 0]], np.float32) * s for s in (0.99, 1.0, 1.01))
  np.testing.assert_array_equal(scoring.exact_top1(queries, reference, below), [0, 2])
  # Past the references: no reference row found, whichever distractor it was.
  np.testing.assert_array_equal(scoring.exact_top1(queries, reference, tie), [0, 4])
  np.testing.assert_array_equal(scoring.exact_top1(queries, reference, above), [0, 4])


def test_hit_rates_by_distractor_count_end_with_the_whole_pool_once():
  reference = np.eye(4, dtype=np.float32)
  queries, truth = reference.copy(), np.arange(4)
  # Copies of rows 0 and 1 tie their queries' true scores; the third row is far from every query.
  pool = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0]], np.float32)
  r = scoring.hit_rates_by_distractor_count(jax.random.key(0), queries, truth, reference,
                                            np.zeros(4, int), pool, sizes=(1, 2), repeats=2)
  assert (r['hr1_reference_only'], r['hr1_near_reference_only'], r['track_reference_only']) == (1.0, 1.0, 1.0)
  assert [(d['n_distractors'], d['repeats']) for d in r['with_distractors']] == [(1, 2), (2, 2), (3, 1)]
  assert r['with_distractors'][-1] == {'n_distractors': 3, 'hr1_mean': 0.5, 'hr1_std': 0.0, 'repeats': 1}
  for d in r['with_distractors'][:2]:  # Each subset of n loses at most n of the queries.
    assert 1.0 - d['n_distractors'] / 4 <= d['hr1_mean'] <= 1.0


def test_top1_rates_loosen_a_hit_to_the_neighbour_then_the_track():
  reference = np.eye(6, dtype=np.float32)
  tracks = np.array([0, 0, 0, 0, 1, 1])
  # Each query points at one row; truth 1 each time: exact, neighbour, far on the track, other track.
  queries = reference[[1, 2, 3, 4]]
  rates = scoring.top1_rates(queries, np.array([1, 1, 1, 1]), reference, tracks)
  assert rates == {'hr1': 0.25, 'near': 0.5, 'track': 0.75}
  # Row 4 is adjacent to row 3 but on another track: not near.
  assert scoring.top1_rates(reference[[4]], np.array([3]), reference, tracks)['near'] == 0.0


def test_hit_rates_by_offset_split_the_queries_into_bands():
  reference = np.eye(4, dtype=np.float32)
  queries = reference[[0, 1, 2, 3, 0]]
  truth = np.array([0, 1, 3, 3, 1])
  off_grid = np.array([0.01, 0.07, 0.12, 0.25, 0.24])
  rows = scoring.hit_rates_by_offset(queries, truth, off_grid, reference, np.zeros(4, int))
  assert [r['queries'] for r in rows] == [1, 1, 1, 0, 2]
  assert [r['hr1'] for r in rows if r['queries']] == [1.0, 1.0, 0.0, 0.5]
