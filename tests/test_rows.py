"""Row sources: the views compose files and arrays without copying."""

import numpy as np
import pytest

from conftest import unit_rows
from rfp import rows as rows_lib
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


def test_sample_rows_are_distinct_and_sorted():
  picked = rows_lib.sample_rows(100, 30, np.random.default_rng(0))
  assert len(set(picked)) == 30 and (np.diff(picked) > 0).all()
  assert len(rows_lib.sample_rows(10, 30, np.random.default_rng(0))) == 10
