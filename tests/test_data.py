"""Embedding files: formats, validation, statistics, splits and batch streams."""

import hashlib
import tracemalloc
import warnings

import numpy as np
import pytest

from conftest import unit_rows
from rfp import data
from rfp.errors import InputError


def _write_mm(path, x):
  x.astype(np.float32).tofile(path)
  np.save(path.with_name(path.stem + '_shape.npy'), np.array(x.shape))


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize('dtype', [np.float16, np.float32])
def test_npy_rows_read_back_exactly(tmp_path, dtype):
  x = unit_rows(300, dtype=dtype)
  np.save(tmp_path / 'x.npy', x)
  emb = data.open_embeddings(tmp_path / 'x.npy', dim=128)
  assert (emb.n, emb.dim, emb.dtype) == (300, 128, np.dtype(dtype))
  np.testing.assert_array_equal(emb.read(10, 20), x[10:20].astype(np.float32))
  np.testing.assert_array_equal(emb.take([250, 3, 17]), x[[250, 3, 17]].astype(np.float32))
  np.testing.assert_array_equal(np.concatenate([c for _, c in emb.chunks(64)]), x.astype(np.float32))


def test_nafp_memmap_layout_is_read_read_only(tmp_path):
  x = unit_rows(200)
  _write_mm(tmp_path / 'dummy_db.mm', x)
  (tmp_path / 'dummy_db.mm').chmod(0o444)
  before = _sha(tmp_path / 'dummy_db.mm')
  emb = data.open_embeddings(tmp_path / 'dummy_db.mm', dim=128)
  np.testing.assert_array_equal(emb.read(0, 200), x)
  np.testing.assert_array_equal(emb.take([5, 1]), x[[5, 1]])
  data.scan(emb)
  assert not emb.memmap().flags.writeable
  assert _sha(tmp_path / 'dummy_db.mm') == before


@pytest.mark.parametrize('make,message', [
    (lambda p: None, 'file not found'),
    (lambda p: p.write_bytes(b''), 'file is empty'),
    (lambda p: p.write_bytes(b'not numpy at all'), 'not a valid .npy'),
    (lambda p: np.save(p, np.zeros((4, 64), np.float32)), 'dimension 64, expected 128'),
    (lambda p: np.save(p, np.zeros((2, 4, 128), np.float32)), 'expected a 2-D'),
    (lambda p: np.save(p, np.zeros((0, 128), np.float32)), 'holds no rows'),
    (lambda p: np.save(p, np.zeros((4, 128), np.int32)), 'not float16/float32'),
])
def test_bad_npy_files_name_the_file_and_problem(tmp_path, make, message):
  path = tmp_path / 'emb.npy'
  make(path)
  with pytest.raises(InputError, match=message) as e:
    data.open_embeddings(path, dim=128)
  assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_memmap_size_must_match_shape_file(tmp_path):
  path = tmp_path / 'db.mm'
  _write_mm(path, unit_rows(10))
  np.save(tmp_path / 'db_shape.npy', np.array([11, 128]))
  with pytest.raises(InputError, match=r'size 5120 bytes does not match shape \(11, 128\)'):
    data.open_embeddings(path)
  (tmp_path / 'db_shape.npy').unlink()
  with pytest.raises(InputError, match=r'neither db_shape.npy \(NAFP\) nor db.csv \(NMFP\)'):
    data.open_embeddings(path)


def test_non_finite_rows_are_rejected_naming_the_first(tmp_path):
  x = unit_rows(1000)
  x[[500, 501, 900], 3] = [np.inf, np.nan, -np.inf]
  np.save(tmp_path / 'x.npy', x)
  with pytest.raises(InputError, match=r'x.npy: row 500 holds NaN or Inf'):
    data.scan(data.open_embeddings(tmp_path / 'x.npy'), chunk_rows=128)


def test_rows_off_the_sphere_are_counted_in_a_warning(tmp_path):
  x = unit_rows(100)
  x[:9] *= 1.5
  np.save(tmp_path / 'x.npy', x)
  with pytest.warns(UserWarning, match='9 of 100 rows are not unit-norm'):
    data.scan(data.open_embeddings(tmp_path / 'x.npy'))
  np.save(tmp_path / 'y.npy', unit_rows(100))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    data.scan(data.open_embeddings(tmp_path / 'y.npy'))


def test_statistics_per_dimension_and_scalar(tmp_path):
  x = unit_rows(5000) + np.linspace(0, 0.1, 128, dtype=np.float32)
  np.save(tmp_path / 'x.npy', x)
  emb = data.open_embeddings(tmp_path / 'x.npy')
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    stats, summary = data.scan(emb, 'per_dim', chunk_rows=777)
    scalar, _ = data.scan(emb, 'scalar')
  np.testing.assert_allclose(stats.mean, x.mean(0), atol=1e-6)
  np.testing.assert_allclose(stats.std, x.std(0), rtol=1e-4)
  np.testing.assert_allclose(scalar.mean, np.full(128, x.mean()), atol=1e-6)
  np.testing.assert_allclose(scalar.std, np.full(128, x.std()), rtol=1e-4)
  np.testing.assert_allclose(stats.denormalize(stats.normalize(x)), x, atol=1e-5)
  assert summary['rows'] == 5000
  assert data.Stats.from_json(stats.to_json()).mean.tolist() == stats.mean.tolist()


def test_validation_split_is_seeded_and_bounded():
  a = data.split_rows(10_000, 0.05, 300, seed=1, block_rows=64)
  np.testing.assert_array_equal(a, data.split_rows(10_000, 0.05, 300, seed=1, block_rows=64))
  assert len(a) == 300 and len(np.unique(a)) == 300 and a.max() < 10_000
  assert not np.array_equal(a, data.split_rows(10_000, 0.05, 300, seed=2, block_rows=64))
  with pytest.raises(InputError):
    data.split_rows(1, 0.5, 10, seed=0, block_rows=64)


def _ids_seen(stream, epoch, stats):
  rows = np.concatenate(list(stream.epoch(epoch)))
  return np.rint(stats.denormalize(rows)[:, 0]).astype(np.int64)


@pytest.mark.parametrize('in_memory', [True, False])
def test_each_epoch_visits_every_training_row_once(tmp_path, in_memory):
  n = 5000
  x = np.zeros((n, 8), np.float32)
  x[:, 0] = np.arange(n)  # Row id, recoverable after normalisation.
  x[:, 1:] = np.random.default_rng(0).normal(size=(n, 7))
  np.save(tmp_path / 'x.npy', x)
  emb = data.open_embeddings(tmp_path / 'x.npy')
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    stats, _ = data.scan(emb)
  val = data.split_rows(n, 0.1, 10_000, seed=0, block_rows=64)
  stream = data.TrainStream(emb, stats, val, batch_size=100, seed=3,
                            in_memory_max_gb=1.0 if in_memory else 0.0,
                            buffer_rows=1024, blocks_per_buffer=4)
  assert stream.in_memory == in_memory and stream.steps_per_epoch == 45
  ids = _ids_seen(stream, 0, stats)
  assert len(ids) == 4500 and len(np.unique(ids)) == 4500
  assert not np.isin(ids, val).any()
  np.testing.assert_array_equal(ids, _ids_seen(stream, 0, stats))  # Deterministic.
  assert not np.array_equal(ids, _ids_seen(stream, 1, stats))  # Reshuffled per epoch.
  skipped = np.concatenate(list(stream.epoch(0, skip=40)))
  np.testing.assert_array_equal(np.rint(stats.denormalize(skipped)[:, 0]), ids[4000:])


def test_a_million_row_memmap_streams_in_bounded_memory(million_row_memmap):
  emb = data.open_embeddings(million_row_memmap, dim=128)
  n = emb.n
  tracemalloc.start()
  stats, summary = data.scan(emb)
  val = data.split_rows(n, 0.01, 10_000, seed=0, block_rows=64)
  stream = data.TrainStream(emb, stats, val, batch_size=4096, seed=0, in_memory_max_gb=0.1,
                            buffer_rows=1 << 15)
  rows = sum(len(b) for b in stream.epoch(0))
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert summary['rows'] == n and not stream.in_memory
  assert rows == stream.steps_per_epoch * 4096 > 0.98 * (n - 10_000)
  assert peak < emb.nbytes / 8, f'peak {peak / 2**20:.0f} MiB for a {emb.nbytes / 2**20:.0f} MiB file'


def test_held_out_blocks_their_hearts_and_rows_far_from_them():
  val = data.split_rows(10_000, 0.25, 10_000, seed=0, block_rows=1000)
  assert len(val) == 2500 and len(np.split(val, np.flatnonzero(np.diff(val) != 1) + 1)) <= 3
  heart = data.interior_rows(np.arange(1000, 3000), 10_000, margin=250)
  assert (heart.min(), heart.max()) == (1250, 2749)
  assert data.interior_rows(np.arange(0, 500), 10_000, margin=100).min() == 0  # File start.
  far = data.rows_far_from(np.arange(1000, 3000), 10_000, 500, 400, np.random.default_rng(0))
  assert len(far) == 500 and not ((far >= 600) & (far <= 3400)).any()


def test_a_track_file_follows_its_embedding_file(tmp_path):
  """'auto' takes the file's own track file (NAME_tracks.npy, or an NMFP
  database.csv beside its database.mm); with none, nothing (blocks stand in)."""
  np.save(tmp_path / 'train.npy', unit_rows(6, 8))
  np.save(tmp_path / 'other.npy', unit_rows(4, 8))
  why = 'blocks of rows stand in for tracks'
  assert data.resolve_tracks(data.AUTO, tmp_path / 'train.npy', 'data.train_tracks', why) is None
  np.save(tmp_path / 'train_tracks.npy', np.repeat([0, 1], 3))
  assert data.resolve_tracks(data.AUTO, tmp_path / 'train.npy', 'data.train_tracks', why) == str(
      tmp_path / 'train_tracks.npy')
  assert data.resolve_tracks(data.AUTO, tmp_path / 'other.npy', 'data.train_tracks', why) is None
  assert data.resolve_tracks(None, tmp_path / 'train.npy', 'data.train_tracks', why) is None
  _write_mm(tmp_path / 'database.mm', unit_rows(5, 8))
  (tmp_path / 'database.csv').write_text('file_name,start,end,emb_dim\na.npy,0,2,8\nb.npy,2,5,8\n')
  assert data.own_tracks(tmp_path / 'database.mm') == str(tmp_path / 'database.csv')


@pytest.mark.parametrize('setting, message', [
    ('train_tracks.npy', r'train_tracks.npy: 6 track ids but .*other.npy has 4 rows; it belongs '
                         r'to another file: set data.train_tracks to the track file of other.npy'),
    ('missing.npy', r'missing.npy: file not found; set data.train_tracks to the track file, or '
                    r'to None \(blocks'),
    ('database.csv', r'database.csv: 5 track ids but .*other.npy has 4 rows'),
    ('floats.npy', r'floats.npy: expected a 1-D integer array of track ids')])
def test_a_track_file_of_another_file_is_refused_from_its_header(tmp_path, setting, message):
  np.save(tmp_path / 'other.npy', unit_rows(4, 8))
  np.save(tmp_path / 'train_tracks.npy', np.repeat([0, 1], 3))
  np.save(tmp_path / 'floats.npy', np.zeros(4))
  (tmp_path / 'database.csv').write_text('file_name,start,end,emb_dim\na.npy,0,2,8\nb.npy,2,5,8\n')
  with pytest.raises(InputError, match=message):
    data.resolve_tracks(str(tmp_path / setting), tmp_path / 'other.npy', 'data.train_tracks',
                        'blocks of rows stand in for tracks')
