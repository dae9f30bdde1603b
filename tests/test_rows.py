"""Row sources: the views compose files and arrays without copying; NaN/Inf checks."""

import numpy as np
import pytest

from conftest import unit_rows
from rfp import data, rows as rows_lib
from rfp.errors import InputError


def test_views_read_and_take_like_the_arrays_they_stand_for():
  a, b = unit_rows(300, 8, 0), unit_rows(500, 8, 1)
  picked = np.sort(np.random.default_rng(2).choice(500, 200, replace=False))
  db = rows_lib.Stack([rows_lib.ArrayRows(a),
                        rows_lib.Slice(rows_lib.Subset(rows_lib.ArrayRows(b), picked), 50, 150)])
  expected = np.concatenate([a, b[picked][50:150]])
  assert (db.n, db.dim) == expected.shape
  np.testing.assert_array_equal(np.concatenate([x for _, x in db.chunks(64)]), expected)
  np.testing.assert_array_equal(db.read(280, 330), expected[280:330])
  ids = np.array([399, 0, 300, 299, 5, 350])  # Unsorted, across both parts.
  np.testing.assert_array_equal(db.take(ids), expected[ids])


def test_check_finite_names_the_file_row():
  x = np.ones((5, 3), np.float32)
  rows_lib.check_finite(x, 'f.npy', np.arange(10, 15))
  x[3, 1] = np.nan
  with pytest.raises(InputError, match='f.npy: row 13 holds NaN or Inf'):
    rows_lib.check_finite(x, 'f.npy', np.arange(10, 15))


def test_every_row_of_every_file_is_checked_in_one_streaming_pass(tmp_path):
  good, bad = unit_rows(300, 4, 0), unit_rows(rows_lib.CHUNK_ROWS + 100, 4, 1)
  np.save(tmp_path / 'good.npy', good)
  bad[rows_lib.CHUNK_ROWS + 7, 2] = np.inf  # In the second chunk: its row id is the file's.
  np.save(tmp_path / 'bad.npy', bad.astype(np.float16))
  emb = [data.open_embeddings(tmp_path / name) for name in ('good.npy', 'bad.npy')]
  rows_lib.check_files_finite(emb[:1])
  with pytest.raises(InputError, match=f'bad.npy: row {rows_lib.CHUNK_ROWS + 7} holds NaN or Inf'):
    rows_lib.check_files_finite(emb, progress=True)


def test_sample_rows_are_distinct_and_sorted():
  picked = rows_lib.sample_rows(100, 30, np.random.default_rng(0))
  assert len(set(picked)) == 30 and (np.diff(picked) > 0).all()
  assert len(rows_lib.sample_rows(10, 30, np.random.default_rng(0))) == 10
