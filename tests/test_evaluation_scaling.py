"""The scaling sweep's pieces on toys with known answers."""

import numpy as np
import pytest

from conftest import tiny_config
from rfp import retrieval, rows
from rfp.errors import InputError
from rfp.evaluation import hardness, inputs, scaling


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _toy_inputs(refs, q, gt, tracks):
  return inputs.Inputs(
      reference=rows.ArrayRows(refs), queries_qd=q, query_rows=np.arange(len(q)),
      ground_truth=gt, true_scores=np.einsum('qd,qd->q', q, refs[gt]), tracks=tracks,
      real=None, real2=None, paths={}, notes=())


def test_hit_rates_by_hand():
  tracks = np.array([0, 0, 0, 1, 1, 1])
  gt = np.array([1, 1, 4, 4, 2])
  ids = np.array([[1, 7], [2, 1], [7, 4], [3, 4], [-1, -1]])  # Row 7 is a distractor.
  out = scaling.hit_rates(ids, gt, n_refs=6, tracks=tracks)
  assert out == {'hr1': 0.2, 'topk': 0.8, 'track1': 0.6, 'near1': 0.6}
  assert scaling.hit_rates(ids, gt, n_refs=6) == {'hr1': 0.2, 'topk': 0.8}


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
  picked = [set(s.rows) for s in real]
  assert note is None and all(len(r) == 300 for r in picked) and picked[0] != picked[1]
  synthetic, note = scaling.distractor_sets('synthetic', pool, 300, 3, seed=0)
  starts = [int(s.read(0, 1)[0, 0]) for s in synthetic]
  assert note is None and starts == [0, 300, 600]  # Disjoint slices.
  synthetic, note = scaling.distractor_sets('synthetic', pool, 600, 3, seed=0)
  assert 'share rows' in note and [int(s.read(0, 1)[0, 0]) for s in synthetic] == [0, 200, 400]
  _, note = scaling.distractor_sets('real', pool, 1000, 2, seed=0)
  assert note == 'real repeats at 1,000 are the whole pool: the same rows each time'
  assert scaling.distractor_sets('real', pool, 1000, 1, seed=0)[1] is None  # Nothing shared.


def test_sizes_must_be_positive(tmp_path):
  config = tiny_config(tmp_path / 'train.npy', dim=4)
  config.eval.sizes = [0, 10]
  toy = _toy_inputs(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[:2],
                    np.arange(2), None)
  with pytest.raises(InputError, match='positive'):
    scaling.plan_sizes(config.eval, toy)
