"""Synthetic tracks: layout, correlated noise, the fit, and track shards on disk."""

import json
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from rfp import (cli, files, generator, noise as noise_lib, rows as rows_lib, sample_folder,
                 sampling, sharding, temporal, tracks)
from rfp.errors import InputError
from conftest import ROOT, SCRIPT_ENV, kill_when


def _write(workdir, out, n, shards, devices=None, **settings):
  sample_cfg = cli.run_config(files.read_config(workdir)).sample
  sample_cfg.n, sample_cfg.shards, sample_cfg.tracks = n, shards, True
  for key, value in settings.items():
    sample_cfg[key] = value
  return sampling.write_samples(workdir, out, sample_cfg, progress=False, devices=devices)


def _reference_noise(seed, shard, bounds, profile_t, scales_pk, dim, rates=tracks.RATES):
  """A shard's track noise straight from its definition, one row at a time in float64."""
  rows = int(bounds[-1])
  blocks = range(-(-rows // noise_lib.BLOCK_ROWS))
  eps = np.concatenate([np.asarray(noise_lib.block_noise(seed, shard, b, dim)) for b in blocks])
  key = noise_lib.shard_key(seed, shard)
  e = np.concatenate([np.asarray(jax.random.normal(
      jax.random.fold_in(jax.random.fold_in(key, b), 1),
      (noise_lib.BLOCK_ROWS, len(rates), dim)))
                      for b in blocks])
  a = np.asarray(rates)[:, None]
  z, u = np.zeros((rows, dim)), np.zeros((len(rates), dim))
  for t in range(len(profile_t)):
    s = np.asarray(scales_pk[profile_t[t]], np.float64)
    for r in range(bounds[t], bounds[t + 1]):
      u = e[r] if r == bounds[t] else a * u + np.sqrt(1 - a**2) * e[r]
      z[r] = s[0] * eps[r] + s[1:] @ u
  return z


def test_layout_fills_the_shard_with_training_lengths_and_cuts_the_last():
  lengths, profile = [5, 17, 40], [0, 1, 2]
  bounds, profile_t = tracks.layout(3, 1, 300, lengths, profile)
  assert bounds[0] == 0 and bounds[-1] == 300 and np.all(np.diff(bounds) > 0)
  sizes = np.diff(bounds)
  assert set(sizes[:-1]) <= set(lengths) and sizes[-1] <= max(lengths)
  by_length = dict(zip(lengths, profile))
  assert [by_length[s] for s in sizes[:-1]] == list(profile_t[:-1])
  again = tracks.layout(3, 1, 300, lengths, profile)
  np.testing.assert_array_equal(bounds, again[0])
  assert not np.array_equal(bounds, tracks.layout(3, 2, 300, lengths, profile)[0])
  fixed, _ = tracks.layout(3, 1, 100, lengths, profile, length=30)
  np.testing.assert_array_equal(fixed, [0, 30, 60, 90, 100])


@pytest.mark.parametrize('num_devices, batch', [(1, 256), (4, 700), (4, 2048)])
def test_track_noise_follows_its_definition_whatever_the_batch(num_devices, batch):
  mesh = sharding.data_mesh(jax.devices()[:num_devices])
  batch = sharding.round_up(batch, mesh)
  dim, rows = 8, 2500
  bounds, profile_t = tracks.layout(7, 2, rows, [300, 900, 40], [0, 1, 0])
  weights = [[0.1, 0.0, 0.2, 0.0, 0.3, 0.0, 0.1], [0.0, 0.5, 0.0, 0.0, 0.0, 0.4, 0.0]]
  plan = {'rates': list(tracks.RATES), 'scales': tracks.scales(weights).tolist()}
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in tracks.shard_noise(
      plan, 7, 2, bounds, profile_t, batch, dim, mesh)])[:rows]
  expected = _reference_noise(7, 2, bounds, profile_t, plan['scales'], dim)
  np.testing.assert_allclose(z, expected, atol=1e-5)


def test_track_noise_is_unit_normal_and_correlated_as_fitted():
  mesh = sharding.data_mesh(jax.devices()[:1])
  dim, rows, lag = 64, 4096, 4
  bounds = np.array([0, rows], np.int64)
  weights = [[0.0, 0.3, 0.0, 0.0, 0.0, 0.5, 0.0]]
  plan = {'rates': list(tracks.RATES), 'scales': tracks.scales(weights).tolist()}
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in tracks.shard_noise(
      plan, 0, 0, bounds, np.zeros(1, np.int64), 1024, dim, mesh)])
  assert abs(z.std() - 1) < 0.03 and abs(z.mean()) < 0.03
  expected = temporal.ar_correlation(tracks.RATES, [lag]) @ np.asarray(weights[0])
  assert abs(np.mean(z[lag:] * z[:-lag]) - expected[0]) < 0.05
  # No AR weight: exactly the rows' noise.
  white = {'rates': list(tracks.RATES), 'scales': tracks.scales([[0.0] * 7]).tolist()}
  z0 = next(tracks.shard_noise(white, 0, 0, bounds, np.zeros(1, np.int64), 1024, dim, mesh))[1]
  np.testing.assert_array_equal(np.asarray(z0), noise_lib.block_noise(0, 0, 0, dim))


def test_training_fits_the_track_noise(trained_run):
  workdir, _, _ = trained_run
  fit = json.loads((workdir / tracks.FILE).read_text())
  calibrated = json.loads((workdir / 'calibration.json').read_text())
  assert fit['sampler']['temperature'] == calibrated['temperature']
  assert fit['sampler']['step'] == calibrated['step']
  sim = fit['response']['similarity']
  assert sim[-1] > 0.999 and sim[0] < sim[len(sim) // 2] < sim[-1]  # Identical noise, rows.
  assert fit['source']['tracks'] == 'blocks of 2048 rows'  # The fixture has no track ids.
  assert fit['track_lengths'] == [2048, 1952]
  for profile in fit['profiles']:
    assert all(w >= 0 for w in profile['weights']) and sum(profile['weights']) <= 1 + 1e-9
  # Asking again with the same settings reads it; other settings fit again.
  sample_cfg = cli.run_config(files.read_config(workdir)).sample
  mtime = (workdir / tracks.FILE).stat().st_mtime_ns
  assert tracks.ensure_fit(generator.load_sampler(workdir, sample_cfg)) == fit
  assert (workdir / tracks.FILE).stat().st_mtime_ns == mtime


def test_track_ids_file_sets_the_training_tracks(tmp_path):
  config = ml_collections.ConfigDict({'data': {'train': str(tmp_path / 'train.npy'),
                                                'train_tracks': str(tmp_path / 'ids.npy'),
                                                'val_block_rows': 4}})
  np.save(tmp_path / 'train.npy', np.ones((10, 4), np.float16))
  np.save(tmp_path / 'ids.npy', np.array([4, 4, 4, 9, 9, 1, 1, 1, 1, 1], np.int32))
  bounds, source = tracks.training_tracks(config)
  np.testing.assert_array_equal(bounds, [0, 3, 5, 10])
  assert source.endswith('ids.npy')
  config.data.train_tracks = str(tmp_path / 'other.npy')
  with pytest.raises(InputError, match='other.npy: file not found; set data.train_tracks=None'):
    tracks.training_tracks(config)
  np.save(tmp_path / 'other.npy', np.zeros(9, np.int32))
  with pytest.raises(InputError, match='has 9 entries but .*train.npy has 10 rows'):
    tracks.training_tracks(config)
  config.data.train_tracks = None  # Without ids, blocks of val_block_rows rows.
  np.testing.assert_array_equal(tracks.training_tracks(config)[0], [0, 4, 8, 10])


def _run_with_weights(trained_run, tmp_path, weights):
  """A copy of the trained run whose temporal fit has these AR weights in every
  profile (the fixture's rows are i.i.d., so its own fit is white noise)."""
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run[0], workdir)
  fit = json.loads((workdir / tracks.FILE).read_text())
  for profile in fit['profiles']:
    profile['weights'] = weights
  files.write_json(workdir / tracks.FILE, fit)
  return workdir


def test_track_shards_hold_whole_tracks_with_their_bounds(trained_run, tmp_path):
  workdir = _run_with_weights(trained_run, tmp_path, [0, 0, 0, 0.9, 0, 0, 0])
  manifest = _write(workdir, tmp_path / 's', 5000, 3, seed=4, dtype='float32')
  assert manifest['tracks']['generator'] == tracks.GENERATOR
  rows = sample_folder.open_samples(tmp_path / 's')
  bounds = sample_folder.read_bounds(tmp_path / 's')
  offsets = np.cumsum([0] + manifest['rows_per_shard'])
  for i, r in enumerate(manifest['rows_per_shard']):
    shard_bounds = np.load(sample_folder.bounds_path(tmp_path / 's', i))
    assert shard_bounds[0] == 0 and shard_bounds[-1] == r
    assert set(offsets[i] + shard_bounds) <= set(bounds)  # Every shard edge is a track edge.
    expected, _ = tracks.shard_layout(manifest['tracks'], 4, i, r)
    np.testing.assert_array_equal(shard_bounds, expected)
  assert bounds[-1] == sum(len(r) for r in rows)
  # Tracks move slower than i.i.d. rows of the same model.
  x = np.concatenate(rows)
  _write(workdir, tmp_path / 'rows', 5000, 3, seed=4, dtype='float32', tracks=False)
  iid = np.concatenate(sample_folder.open_samples(tmp_path / 'rows'))
  lag1 = np.nanmean(temporal.lag_similarity(
      rows_lib.ArrayRows(x), bounds, lags=(1,)))
  lag1_iid = np.nanmean(temporal.lag_similarity(
      rows_lib.ArrayRows(iid), bounds, lags=(1,)))
  assert lag1 > lag1_iid + 0.05
  with pytest.raises(InputError, match='holds i.i.d. rows, not tracks'):
    sample_folder.read_bounds(tmp_path / 'rows')


def test_track_shards_do_not_depend_on_devices_or_batch_size(trained_run, tmp_path):
  workdir, _, _ = trained_run
  for name, devices, batch in [('one', jax.devices()[:1], 512), ('four', jax.devices(), 700)]:
    _write(workdir, tmp_path / name, 3000, 2, devices=devices, seed=5, dtype='float32',
           batch_size=batch, track_length=300)
  for a, b in zip(sample_folder.open_samples(tmp_path / 'one'),
                  sample_folder.open_samples(tmp_path / 'four')):
    np.testing.assert_allclose(a, b, atol=1e-5)
  np.testing.assert_array_equal(sample_folder.read_bounds(tmp_path / 'one'),
                                np.append(np.arange(0, 3000, 300), 3000))
  with pytest.raises(InputError, match='other settings'):
    _write(workdir, tmp_path / 'one', 3000, 2, seed=5, dtype='float32', track_length=200)


def test_a_shard_without_its_bounds_is_redone_and_refused(trained_run, tmp_path):
  workdir, _, _ = trained_run
  _write(workdir, tmp_path, 1200, 2, seed=1)
  sample_folder.bounds_path(tmp_path, 1).unlink()
  with pytest.raises(InputError, match='shard 1 of 2 is missing its bounds file'):
    sample_folder.read_bounds(tmp_path)
  kept = os.stat(sample_folder.shard_path(tmp_path, 0))
  _write(workdir, tmp_path, 1200, 2, seed=1)
  assert os.stat(sample_folder.shard_path(tmp_path, 0)).st_mtime_ns == kept.st_mtime_ns
  assert sample_folder.read_bounds(tmp_path)[-1] == 1200


def test_killed_track_sampling_resumes_to_the_same_files(trained_run, tmp_path):
  workdir, _, _ = trained_run
  _write(workdir, tmp_path / 'clean', 24_000, 12, seed=3, batch_size=1000)
  out = tmp_path / 'killed'
  args = ['--workdir', str(workdir), '--out', str(out), '--n', '24000', '--shards', '12',
          '--seed', '3', '--tracks', '--config.sample.batch_size=1000']
  kill_when([sys.executable, str(ROOT / 'sample.py'), '--no-progress', *args],
            lambda: sample_folder.shard_path(out, 0).exists(), timeout=120)
  assert len(list(out.glob('shard-*[0-9].npy'))) < 12, 'finished before it could be killed'
  resumed = subprocess.run([sys.executable, str(ROOT / 'sample.py'), '--no-progress', *args],
                           capture_output=True, text=True, env=SCRIPT_ENV, cwd=ROOT, timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  names = sorted(p.name for p in out.iterdir())
  assert names == sorted(p.name for p in (tmp_path / 'clean').iterdir())
  for name in names:
    if name != 'manifest.json':
      assert (out / name).read_bytes() == (tmp_path / 'clean' / name).read_bytes(), name
