"""Sample folders: shard layout and checks."""

import json

import numpy as np
import pytest

from rfp import sample_folder
from rfp.errors import InputError


def make_folder(path, n=10, shards=2, dim=4, step=7, dtype='float16'):
  rows = sample_folder.rows_per_shard(n, shards)
  path.mkdir(parents=True)
  for i, r in enumerate(rows):
    np.save(sample_folder.shard_path(path, i), np.full((r, dim), i, dtype))
  manifest = {'n': n, 'shards': shards, 'rows_per_shard': rows, 'dim': dim, 'dtype': dtype,
              'seed': 0, 'checkpoint': {'step': step}}
  (path / 'manifest.json').write_text(json.dumps(manifest))
  return manifest


def test_rows_per_shard_are_even_and_sum_to_n():
  assert sample_folder.rows_per_shard(10, 4) == [3, 3, 2, 2]
  assert sum(sample_folder.rows_per_shard(1001, 7)) == 1001


def test_shard_rows_stream_the_shards_in_order(tmp_path):
  make_folder(tmp_path / 's', n=11, shards=3)
  parts = [sample_folder.shard_rows(a) for a in sample_folder.open_samples(tmp_path / 's')]
  assert [p.n for p in parts] == [4, 4, 3]
  assert parts[2].read(0, 10)[:, 0].tolist() == [2.0, 2.0, 2.0]


def test_check_shard_says_what_is_wrong(tmp_path):
  path = sample_folder.shard_path(tmp_path, 0)
  assert sample_folder.check_shard(path, 5, 4, 'float16') == 'missing'
  sample_folder.tmp_path(path).write_bytes(b'')
  assert sample_folder.check_shard(path, 5, 4, 'float16') == 'partial'
  np.save(path, np.zeros((5, 4), np.float32))
  assert 'expected (5, 4) float16' in sample_folder.check_shard(path, 5, 4, 'float16')
  assert sample_folder.check_shard(path, 5, 4, 'float32') is None


def test_read_manifest_refuses_other_folders(tmp_path):
  with pytest.raises(InputError, match='no manifest.json; not a folder written by sample.py'):
    sample_folder.read_manifest(tmp_path)
