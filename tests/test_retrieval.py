"""IVF-PQ search with exact re-ranking."""

import numpy as np
import pytest

from conftest import unit_rows
from rfp import retrieval, rows
from rfp.errors import InputError


def _spec(**kw):
  return retrieval.IndexSpec(**{'nlist': 16, 'nprobe': 16, 'code_bytes': 4, 'bits': 8,
                                'k': 20, 'train_rows': 10_000, **kw})


def test_full_probe_with_exact_reranking_equals_exact_search():
  """nprobe = nlist scans every vector; k = database size re-ranks them all exactly."""
  refs, distractors = unit_rows(1000, 16, 3), unit_rows(2000, 16, 4)
  q = refs[:100] + 0.3 * unit_rows(100, 16, 5)
  db = rows.Stack([rows.ArrayRows(refs), rows.ArrayRows(distractors)])
  index = retrieval.build_index(db, _spec(), np.random.default_rng(0))
  ids, scores = retrieval.search(index, q, db, k=db.n)
  full = q @ np.concatenate([refs, distractors]).T
  exact = np.argsort(-full, axis=1, kind='stable')
  np.testing.assert_array_equal(ids[:, :50], exact[:, :50])
  np.testing.assert_allclose(scores[:, 0], full.max(1), rtol=1e-5)


def test_reranking_fixes_pq_order_within_the_candidates():
  refs = unit_rows(3000, 16, 6)
  q = refs[:200] + 0.2 * unit_rows(200, 16, 7)
  db = rows.ArrayRows(refs)
  index = retrieval.build_index(db, _spec(nprobe=4), np.random.default_rng(0))
  raw = index.search(q, 20)
  ids, scores = retrieval.search(index, q, db, k=20)
  assert all(set(a) == set(b) for a, b in zip(raw, ids))  # Same candidates, new order.
  assert np.all(np.diff(scores, axis=1) <= 0)
  np.testing.assert_allclose(scores, np.take_along_axis(q @ refs.T, ids, 1), rtol=1e-5)


def test_search_batches_give_the_same_answer(monkeypatch):
  refs = unit_rows(2000, 16, 8)
  q = refs[:300] + 0.3 * unit_rows(300, 16, 9)
  db = rows.ArrayRows(refs)
  index = retrieval.build_index(db, _spec(nprobe=4), np.random.default_rng(0))
  whole = retrieval.search(index, q, db, k=10)
  monkeypatch.setattr(retrieval, 'SEARCH_BATCH', 64)
  done = []
  batched = retrieval.search(index, q, db, k=10, on_batch=done.append)
  np.testing.assert_array_equal(whole[0], batched[0])
  assert done == [64, 128, 192, 256, 300]  # Progress after each batch.


def test_missing_candidates_sort_last():
  refs = unit_rows(300, 8, 10)
  ids = np.array([[5, -1, 7], [-1, -1, -1]])
  out, scores = retrieval.rerank(refs[[7, 0]], ids, rows.ArrayRows(refs))
  assert out[0, 0] == 7 and out[0, 2] == -1 and scores[0, 2] == -np.inf
  assert np.all(scores[1] == -np.inf)


def test_small_databases_shrink_the_index():
  db = rows.ArrayRows(unit_rows(1000, 16, 11))
  index = retrieval.build_index(db, _spec(nlist=256, nprobe=40), np.random.default_rng(0))
  assert index.settings['nlist'] == 1000 // retrieval.MIN_POINTS_PER_CENTROID
  assert index.settings['nprobe'] == index.settings['nlist']
  assert index.settings['sparse_code_training'] and index.ntotal == 1000
  tiny = retrieval.build_index(rows.ArrayRows(unit_rows(100, 16, 12)), _spec(),
                               np.random.default_rng(0))
  assert tiny.settings['nlist'] == 2 and tiny.settings['bits'] == 6


def test_training_rows_are_a_sample():
  db = rows.ArrayRows(unit_rows(5000, 16, 13))
  index = retrieval.build_index(db, _spec(train_rows=1000), np.random.default_rng(0))
  assert index.settings['train_rows'] == 1000 and index.ntotal == 5000


def test_on_chunk_sees_every_row_once_in_order():
  x = unit_rows(1000, 16, 14)
  seen = []
  retrieval.build_index(rows.ArrayRows(x), _spec(), np.random.default_rng(0),
                        on_chunk=lambda start, c: seen.append((start, c)), chunk_rows=300)
  assert [s for s, _ in seen] == [0, 300, 600, 900]
  np.testing.assert_array_equal(np.concatenate([c for _, c in seen]), x)


@pytest.mark.parametrize('code_bytes,bits', [(64, 8), (3, 8), (4, 5)])
def test_code_size_must_split_the_dimension(code_bytes, bits):
  with pytest.raises(InputError, match='sub-quantizers'):
    _spec(code_bytes=code_bytes, bits=bits).subquantizers(16)


def test_paper_code_size_on_128_dims():
  assert _spec(code_bytes=64, bits=8).subquantizers(128) == 64


def test_a_copy_reuses_the_trained_quantizers_and_finds_the_same(tmp_path):
  db = rows.ArrayRows(unit_rows(3000, 16, 21))
  spec = _spec(nprobe=4)
  index = retrieval.build_index(db, spec, np.random.default_rng(0))
  reused = retrieval.build_index(db, spec, np.random.default_rng(1), trained=index)
  assert reused.ntotal == index.ntotal == 3000 and reused.settings == index.settings
  q = unit_rows(50, 16, 22)
  np.testing.assert_array_equal(reused.search(q, 10), index.search(q, 10))


def test_a_written_trained_index_reads_back_and_finds_the_same(tmp_path):
  db = rows.ArrayRows(unit_rows(3000, 16, 23))
  spec = _spec(nprobe=4)
  trained = retrieval.train_index(db, spec, np.random.default_rng(0), gpu=False)
  trained.write(tmp_path / 'trained.index')
  read = retrieval.Index.read(tmp_path / 'trained.index', trained.settings, gpu=False)
  assert read.ntotal == 0 and read.settings == trained.settings
  q = unit_rows(50, 16, 24)
  np.testing.assert_array_equal(
      retrieval.build_index(db, spec, None, trained=read).search(q, 10),
      retrieval.build_index(db, spec, None, trained=trained).search(q, 10))
