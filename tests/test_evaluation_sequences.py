"""Sequence search and sequence hardness on small databases of tracks with known answers."""

import numpy as np
import pytest

from conftest import unit_rows
from rfp import bounds as bounds_lib, retrieval, rows
from rfp.errors import InputError
from rfp.evaluation import rates, sequences

DIM = 16


def _spec(nlist=4, k=10, code_bytes=4, train_rows=10_000):
  """nprobe = nlist: every cell is scanned, so only the codes approximate."""
  return retrieval.IndexSpec(nlist=nlist, nprobe=nlist, code_bytes=code_bytes, bits=8, k=k,
                             train_rows=train_rows)


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _brute_force(q_qld, x_nd, bounds):
  """Best mean score and its start over every start whose rows lie in one track."""
  n_q, length, _ = q_qld.shape
  best, where = np.full(n_q, -np.inf), np.full(n_q, -1)
  for first, end in zip(bounds[:-1], bounds[1:]):
    for s in range(first, end - length + 1):
      score = np.mean([q_qld[:, l] @ x_nd[s + l] for l in range(length)], axis=0)
      where = np.where(score > best, s, where)
      best = np.maximum(best, score)
  return best, where


def test_bounds_from_starts_ids_and_stacks():
  np.testing.assert_array_equal(bounds_lib.track_bounds([0, 4, 9], 12), [0, 4, 9, 12])
  np.testing.assert_array_equal(bounds_lib.bounds_from_ids([7, 7, 3, 3, 3, 7]), [0, 2, 5, 6])
  stacked = bounds_lib.stack_bounds([np.array([0, 4, 9]), np.array([0, 5])])
  np.testing.assert_array_equal(stacked, [0, 4, 9, 14])
  for starts, n in (([1, 4], 9), ([0, 4, 4], 9), ([0, 9], 9), ([0, 5, 3], 9)):
    with pytest.raises(InputError):
      bounds_lib.track_bounds(starts, n)
  np.testing.assert_array_equal(
      bounds_lib.valid_starts([-1, 0, 1, 2, 3, 4, 5, 8, 9], np.array([0, 4, 9]), 3),
      [False, True, True, False, False, True, True, False, False])


def test_a_query_of_consecutive_segments_finds_its_run():
  # References: tracks of 40, 30 and 50 rows; distractors: two tracks of 60.
  refs, distractors = unit_rows(120, DIM, 1), unit_rows(120, DIM, 2)
  db = rows.Stack([rows.ArrayRows(refs), rows.ArrayRows(distractors)])
  bounds = bounds_lib.stack_bounds([bounds_lib.track_bounds([0, 40, 70], 120),
                                    bounds_lib.track_bounds([0, 60], 120)])
  index = retrieval.build_index(db, _spec(), np.random.default_rng(0))
  length, gt = 5, np.array([0, 12, 35, 40, 64, 70, 115])
  q = _unit(refs[gt[:, None] + np.arange(length)] + 0.1 * unit_rows(len(gt) * length, DIM, 3)
            .reshape(len(gt), length, DIM))
  starts, scores = sequences.search_sequences(index, q, db, bounds, k=10, top=3)
  np.testing.assert_array_equal(starts[:, 0], gt)
  exact = sequences.start_scores(q, db, gt[:, None])[:, 0]
  np.testing.assert_allclose(scores[:, 0], exact, rtol=1e-5)
  assert np.all(np.diff(scores, axis=1) <= 0)
  # Three starts kept: top-3 beside top-1, no top-10.
  assert rates.sequence_hit_rates(starts, gt, np.repeat([0, 1, 2], [40, 30, 50]),
                                  120) == {'hr1': 1.0, 'near1': 1.0, 'track1': 1.0, 'top3': 1.0}


def test_a_start_straddling_two_tracks_is_never_returned():
  x = unit_rows(30, DIM, 4)
  db, bounds = rows.ArrayRows(x), bounds_lib.track_bounds([0, 10, 20], 30)
  # The query is rows 8..11 exactly: start 8 would score 1.0, but it runs
  # from the first track into the second.
  q = x[None, 8:12]
  index = retrieval.build_index(db, _spec(nlist=1, code_bytes=2), np.random.default_rng(0))
  one_track = sequences.search_sequences(index, q, db, bounds_lib.track_bounds([0], 30), k=30)
  assert one_track[0][0, 0] == 8  # Allowed, it wins: the case is a real test.
  starts, scores = sequences.search_sequences(index, q, db, bounds, k=30, top=100)
  returned = starts[starts >= 0]
  assert 8 not in returned and bounds_lib.valid_starts(returned, bounds, 4).all()
  # k = every row: all valid starts are candidates, so the best is the exact best.
  best, where = _brute_force(q, x, bounds)
  assert starts[0, 0] == where[0] and scores[0, 0] == pytest.approx(best[0], rel=1e-5)
  assert len(returned) == 3 * (10 - 4 + 1) and np.all(scores[0, len(returned):] == -np.inf)


def test_a_query_longer_than_a_track_finds_nothing_in_it():
  x = unit_rows(25, DIM, 5)
  db, bounds = rows.ArrayRows(x), bounds_lib.track_bounds([0, 5], 25)
  # Eight segments: the first track's five rows, then three more rows.
  q = np.concatenate([x[:5], unit_rows(3, DIM, 6)])[None]
  index = retrieval.build_index(db, _spec(nlist=1, code_bytes=2), np.random.default_rng(0))
  starts, _ = sequences.search_sequences(index, q, db, bounds, k=25, top=50)
  assert np.all(starts[starts >= 0] >= 5)
  alone = rows.ArrayRows(x[:5])
  (best, where), = sequences.exact_best_starts(q, alone, bounds_lib.track_bounds([0], 5),
                                               [8]).values()
  assert best == -np.inf and where == -1


@pytest.mark.parametrize('block', [1, 3, 5, 10_000])
def test_exact_search_equals_brute_force_for_every_length_in_any_block_size(block):
  # Tracks shorter than, equal to and longer than the query.
  bounds = bounds_lib.track_bounds(np.cumsum([0, 7, 1, 12, 3, 4]), 47)
  x = unit_rows(47, DIM, 7)
  q = _unit(x[[2, 10, 30]][:, None] + 0.5 * unit_rows(12, DIM, 8).reshape(3, 4, DIM))
  got = sequences.exact_best_starts(q, rows.ArrayRows(x), bounds, [1, 2, 4], block)
  for length in (1, 2, 4):
    best, where = _brute_force(q[:, :length], x, bounds)
    np.testing.assert_allclose(got[length][0], best, rtol=1e-5)
    np.testing.assert_array_equal(got[length][1], where)


def _noisy_runs(segments, every, seed):
  """400 rows in tracks of 50, queries: noisy runs of `segments` rows starting
  every `every` rows; (index, db, bounds, queries [q, segments, dim])."""
  x = unit_rows(400, DIM, seed)
  db, bounds = rows.ArrayRows(x), bounds_lib.track_bounds(np.arange(0, 400, 50), 400)
  gt = np.arange(0, 400 - 2 * segments, every)
  q = _unit(x[gt[:, None] + np.arange(segments)] + 0.3 * unit_rows(
      len(gt) * segments, DIM, seed + 1).reshape(len(gt), segments, DIM))
  return retrieval.build_index(db, _spec(), np.random.default_rng(0)), db, bounds, q


def test_search_batches_give_the_same_answer(monkeypatch):
  index, db, bounds, q = _noisy_runs(3, 13, 9)
  whole = sequences.search_sequences(index, q, db, bounds, k=5, top=4)
  monkeypatch.setattr(sequences, 'SEARCH_BATCH', 7)  # Two queries of three segments a batch.
  batched = sequences.search_sequences(index, q, db, bounds, k=5, top=4)
  np.testing.assert_array_equal(whole[0], batched[0])
  np.testing.assert_allclose(whole[1], batched[1], rtol=1e-6)


def test_shorter_queries_reuse_the_longest_ones_segment_search():
  index, db, bounds, q = _noisy_runs(5, 11, 12)
  ids_qlk = sequences.segment_ids(index, q, k=5)
  assert ids_qlk.shape == (len(q), 5, 5)
  np.testing.assert_array_equal(ids_qlk[:, 2], index.search(q[:, 2], 5))
  for n in (1, 3, 5):
    own = sequences.search_sequences(index, q[:, :n], db, bounds, k=5, top=3)
    shared = sequences.search_sequences(index, q[:, :n], db, bounds, k=5, top=3, ids_qlk=ids_qlk)
    np.testing.assert_array_equal(own[0], shared[0])
    np.testing.assert_array_equal(own[1], shared[1])


def test_bounds_must_cover_the_rows():
  x = unit_rows(30, DIM, 11)
  index = retrieval.build_index(rows.ArrayRows(x), _spec(nlist=1, code_bytes=2),
                                np.random.default_rng(0))
  with pytest.raises(InputError, match='cover 20 rows'):
    sequences.search_sequences(index, x[None, :3], rows.ArrayRows(x),
                               bounds_lib.track_bounds([0], 20), k=5)


def test_slice_bounds_cut_tracks_at_the_slice_ends():
  bounds = bounds_lib.track_bounds([0, 4, 9], 12)
  np.testing.assert_array_equal(bounds_lib.slice_bounds(bounds, 2, 10), [0, 2, 7, 8])
  np.testing.assert_array_equal(bounds_lib.slice_bounds(bounds, 4, 9), [0, 5])
  np.testing.assert_array_equal(bounds_lib.slice_bounds(np.array([0, 100]), 30, 60), [0, 30])
