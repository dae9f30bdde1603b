"""The scaling sweep's pieces on toys with known answers."""

import dataclasses

import numpy as np
import pytest

from conftest import tiny_config
from rfp import bounds as bounds_lib, retrieval, rows
from rfp.errors import InputError
from rfp.evaluation import hardness, inputs, rates, scaling, sequences, stats


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _toy_inputs(refs, q, gt, tracks, seqs=None):
  bounds = bounds_lib.bounds_from_ids(tracks if tracks is not None else np.zeros(len(refs)))
  return inputs.Inputs(
      reference=rows.ArrayRows(refs), queries_qd=q, query_rows=np.arange(len(q)),
      ground_truth=gt, true_scores=np.einsum('qd,qd->q', q, refs[gt]), tracks=tracks,
      real=None, real2=None, sequences=seqs, bounds={'reference': bounds}, paths={}, notes=())


def test_hit_rates_by_hand():
  tracks = np.array([0, 0, 0, 1, 1, 1])
  gt = np.array([1, 1, 4, 4, 2])
  ids = np.array([[1, 7], [2, 1], [7, 4], [3, 4], [-1, -1]])  # Row 7 is a distractor.
  out = rates.hit_rates(ids, gt, n_refs=6, track_id_of_row=tracks)
  assert out == {'hr1': 0.2, 'topk': 0.8, 'track1': 0.6, 'near1': 0.6}
  # Without track ids the references are one track, as NAFP counts near hits.
  assert rates.hit_rates(ids, gt, n_refs=6) == {'hr1': 0.2, 'topk': 0.8, 'near1': 0.6}


def test_hr1_and_hardness_on_a_toy_with_a_known_answer():
  """Queries 0-49 have an exact copy among the distractors (miss, hard); 50-74 were
  cut from the next segment of the same track (miss, near hit); 75-99 are clean."""
  rng = np.random.default_rng(0)
  dim, tracks = 32, np.repeat(np.arange(10), 50)
  refs = _unit(rng.normal(size=(500, dim)))
  gt = np.sort(rng.choice(np.flatnonzero(np.arange(500) % 50 < 49), 100, replace=False))
  source = np.where(np.arange(100) < 75, gt + (np.arange(100) >= 50), gt)
  q = _unit(refs[source] + 0.03 * rng.normal(size=(100, dim)))
  distractors = np.concatenate([q[:50], _unit(rng.normal(size=(2000, dim)))])
  toy = _toy_inputs(refs, q, gt, tracks)
  spec = retrieval.IndexSpec(nlist=8, nprobe=8, code_bytes=16, bits=8, k=20, train_rows=5000)
  out = scaling.retrieval_point(toy, rows.ArrayRows(distractors), spec,
                                   np.random.default_rng(0))
  assert out['hr1'] == 0.25 and out['track1'] == 0.5 and out['near1'] == 0.5
  expected_hard = np.mean((q @ distractors.T).max(1) > toy.true_scores)
  assert out['hard'] == expected_hard and 0.5 <= out['hard'] <= 0.75
  assert hardness.hardness_point(toy, rows.ArrayRows(distractors)) == {
      'hard': expected_hard}


def test_distractor_sets_are_fresh_per_repeat():
  pool = rows.ArrayRows(np.arange(1000, dtype=np.float32)[:, None])
  real, note = scaling.distractor_sets('real', pool, 300, 3, seed=0)
  picked = [s.read(0, s.n)[:, 0] for s, _ in real]
  # Without track ids: a run of consecutive rows of the file, one track.
  assert note is None and all(np.all(np.diff(r) == 1) and len(r) == 300 for r in picked)
  assert picked[0][0] != picked[1][0] and all(b.tolist() == [0, 300] for _, b in real)
  synthetic, note = scaling.distractor_sets('synthetic', pool, 300, 3, seed=0)
  starts = [int(s.read(0, 1)[0, 0]) for s, _ in synthetic]
  assert note is None and starts == [0, 300, 600]  # Disjoint slices.
  synthetic, note = scaling.distractor_sets('synthetic', pool, 600, 3, seed=0)
  assert 'share rows' in note and [int(s.read(0, 1)[0, 0]) for s, _ in synthetic] == [0, 200, 400]
  _, note = scaling.distractor_sets('real', pool, 1000, 2, seed=0)
  assert note == 'real repeats at 1,000 are the whole pool: the same rows each time'
  assert scaling.distractor_sets('real', pool, 1000, 1, seed=0)[1] is None  # Nothing shared.


def test_real_sets_are_whole_tracks_and_synthetic_tracks_are_cut_at_slice_ends():
  lengths = np.array([50, 120, 30, 200, 80, 20, 300, 200])
  bounds = bounds_lib.track_bounds(np.cumsum(np.concatenate([[0], lengths[:-1]])), 1000)
  pool = rows.ArrayRows(np.arange(1000, dtype=np.float32)[:, None])
  track_of = np.repeat(np.arange(8), lengths)
  sets, _ = scaling.distractor_sets('real', pool, 333, 4, seed=1, bounds=bounds)
  for s, b in sets:
    r = s.read(0, s.n)[:, 0].astype(int)
    assert len(r) == 333 and b[-1] == 333 and np.all(np.diff(r) > 0)
    runs = [r[x:y] for x, y in zip(b[:-1], b[1:])]
    # Each run is one track's rows from its first; all but one are the whole track.
    assert all(len(set(track_of[run])) == 1 and run[0] == bounds[track_of[run[0]]] for run in runs)
    assert sum(len(run) < lengths[track_of[run[0]]] for run in runs) <= 1
  assert len({tuple(s.read(0, s.n)[:, 0]) for s, _ in sets}) > 1
  synthetic, _ = scaling.distractor_sets('synthetic', pool, 400, 2, seed=0, bounds=bounds)
  np.testing.assert_array_equal(synthetic[1][1], [0, 80, 100, 400])  # Rows 400-800.


def test_multi_segment_queries_on_a_toy_with_a_known_answer():
  """Twenty 4-segment queries cut from reference tracks; the first ten also have
  an exact copy of their run in a distractor track, which wins by a hair."""
  rng = np.random.default_rng(2)
  dim, tracks = 16, np.repeat(np.arange(5), 40)
  refs = _unit(rng.normal(size=(200, dim)))
  gt = np.array([t * 40 + o for t in range(5) for o in (0, 9, 20, 36)])
  q_qld = _unit(refs[gt[:, None] + np.arange(4)] + 0.05 * rng.normal(size=(20, 4, dim)))
  copies = q_qld[:10].reshape(-1, dim)
  distractors = np.concatenate([_unit(rng.normal(size=(60, dim))), copies])
  d_bounds = bounds_lib.track_bounds([0, 60], 100)
  seqs = inputs.Sequences(q_qld, np.arange(20), gt, (1, 4), {
      n: sequences.start_scores(q_qld[:, :n], rows.ArrayRows(refs), gt[:, None])[:, 0]
      for n in (1, 4)})
  toy = _toy_inputs(refs, q_qld[:, 0], gt, tracks, seqs)
  spec = retrieval.IndexSpec(nlist=4, nprobe=4, code_bytes=8, bits=8, k=20, train_rows=5000)
  out = scaling.retrieval_point(toy, rows.ArrayRows(distractors), spec,
                                np.random.default_rng(0), bounds=d_bounds)['sequences']
  # Exact copies of the first ten runs: those queries miss and count as hard.
  hard_q = np.arange(20) < 10
  assert out['4'] == {'hard': 0.5, 'hard_q': stats.pack(hard_q), 'hr1': 0.5, 'near1': 0.5,
                      'track1': 0.5, 'top3': 1.0, 'top10': 1.0}
  assert out['1']['hard'] >= 0.5
  # Read as one track, the copies' runs also straddle into each other: no fewer hard ones.
  one = scaling.sequence_hardness(toy, rows.ArrayRows(distractors), np.array([0, 100]))
  assert one['4']['hard'] >= 0.5


def test_sizes_must_be_positive(tmp_path):
  config = tiny_config(tmp_path / 'train.npy', dim=4)
  config.eval.sizes = [0, 10]
  toy = _toy_inputs(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[:2],
                    np.arange(2), None)
  with pytest.raises(InputError, match='positive'):
    scaling.plan_sizes(config.eval, toy)


def test_sequence_hit_rates_by_hand():
  tracks = np.repeat([0, 1], 10)  # 20 reference rows; rows 20+ are distractors.
  gt = np.array([3, 3, 3, 3, 12, 15, 0, 9])
  # Exact; near; same track, far; other track; near; a distractor; nothing;
  # one segment off but in the next track.
  best = np.array([3, 4, 9, 12, 11, 25, -1, 10])
  assert rates.sequence_hit_rates(best[:, None], gt, tracks, 20) == {
      'hr1': 1 / 8, 'near1': 3 / 8, 'track1': 4 / 8}
  # Without track ids (NAFP's layout) the last one is near too.
  assert rates.sequence_hit_rates(best[:, None], gt, None, 20) == {'hr1': 1 / 8, 'near1': 4 / 8}
  # NAFP's top-3 and top-10: the true start among the best 3 or 10 (-1: fewer found).
  starts = np.full((8, 10), -1)
  starts[:, 0] = best
  starts[1, 2], starts[2, 5], starts[6, 9] = 3, 3, 0
  out = rates.sequence_hit_rates(starts, gt, tracks, 20)
  assert (out['hr1'], out['top3'], out['top10']) == (1 / 8, 2 / 8, 4 / 8)
  assert 'top10' not in rates.sequence_hit_rates(starts[:, :3], gt, tracks, 20)


def test_a_second_real_set_smaller_than_the_pool_adds_its_size(tmp_path):
  config = tiny_config(tmp_path / 'train.npy', dim=4)
  config.eval.sizes = [100, 1_000, 10_000]
  config.eval.tracks = False
  eye = np.eye(4, dtype=np.float32)
  toy = dataclasses.replace(_toy_inputs(eye, eye[:2], np.arange(2), None),
                            real=rows.ArrayRows(np.zeros((5_000, 4), np.float32)),
                            real2=rows.ArrayRows(np.zeros((3_000, 4), np.float32)))
  sizes, _ = scaling.plan_sizes(config.eval, toy)
  # The verdict is read where the second set ends: 3,000 is run by every curve.
  assert sizes['real'] == [100, 1_000, 3_000, 5_000] and sizes['real2'] == [100, 1_000, 3_000]
  assert sizes['synthetic'] == [100, 1_000, 3_000, 5_000, 10_000]


def test_a_point_built_in_parts_matches_one_build_and_resumes_after_a_part(tmp_path, monkeypatch):
  """Every synthetic row in three parts, cut off after the first: the re-run adds
  only the missing parts, and gives the one-pass build's hit rates and hardness."""
  rng = np.random.default_rng(1)
  dim, tracks = 32, np.repeat(np.arange(10), 50)
  refs = _unit(rng.normal(size=(500, dim)))
  gt = rng.choice(500, 100, replace=False)
  q = _unit(refs[gt] + 0.3 * rng.normal(size=(100, dim)))
  toy = _toy_inputs(refs, q, gt, tracks)
  shards = [rows.ArrayRows(_unit(rng.normal(size=(700, dim)))) for _ in range(5)]
  spec = retrieval.IndexSpec(nlist=8, nprobe=4, code_bytes=8, bits=8, k=10, train_rows=3000)
  trained = retrieval.train_index(rows.Stack([toy.reference, *shards]), spec,
                                  np.random.default_rng(0))
  whole = rows.Stack(shards)
  one = scaling.retrieval_point(toy, whole, spec, None, trained=trained)

  added, add_part = [], scaling.index_parts.add_part

  def cut_after_one_part(*args, **kwargs):
    if added:
      raise KeyboardInterrupt
    added.append(args[3])
    return add_part(*args, **kwargs)

  folder = tmp_path / 'point.index'
  monkeypatch.setattr(scaling.index_parts, 'add_part', cut_after_one_part)
  with pytest.raises(KeyboardInterrupt):
    scaling.retrieval_point(toy, whole, spec, None, trained=trained,
                            in_parts=(folder, shards, 3))
  assert (folder / 'best-00000-of-00003.npy').exists()

  def counting(*args, **kwargs):
    added.append(args[3])
    return add_part(*args, **kwargs)

  monkeypatch.setattr(scaling.index_parts, 'add_part', counting)
  parts = scaling.retrieval_point(toy, whole, spec, None, trained=trained,
                                  in_parts=(folder, shards, 3))
  assert added == [0, 1, 2]  # Part 0 once, then only the missing ones.
  assert parts['index']['inverted_lists'] == 'on disk'
  assert not list(folder.glob('part-*.index'))  # Merged, then deleted.
  for key in ('hr1', 'topk', 'hard'):
    assert parts[key] == one[key], key
  expected = np.mean((q @ whole.read(0, whole.n).T).max(1) > toy.true_scores)
  assert parts['hard'] == pytest.approx(expected)
