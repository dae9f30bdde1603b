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


def _reference_noise(seed, shard, bounds, sections, scales_pk, dim, rates=tracks.RATES):
  """A shard's track noise straight from its definition, one row at a time in float64."""
  rows, k = int(bounds[-1]), len(rates)
  blocks = range(-(-rows // noise_lib.BLOCK_ROWS))
  eps = np.concatenate([np.asarray(noise_lib.block_noise(seed, shard, b, dim)) for b in blocks])
  key = noise_lib.shard_key(seed, shard)
  e = np.concatenate([np.asarray(jax.random.normal(
      jax.random.fold_in(jax.random.fold_in(key, b), 1), (noise_lib.BLOCK_ROWS, k + 1, dim)))
                      for b in blocks]).astype(np.float64)
  a = np.asarray(rates)[:, None]

  def step(u, r, restart):
    """AR states and MA value of one process at row r."""
    if restart:
      return e[r, :k], e[r, k]
    return a * u + np.sqrt(1 - a**2) * e[r, :k], (e[r, k] + e[r - 1, k]) / np.sqrt(2)

  z = np.zeros((rows, dim))
  track = np.searchsorted(bounds, np.arange(rows), side='right') - 1
  u = v = None
  for r in range(rows):
    s = np.asarray(scales_pk[sections.profile_t[track[r]]], np.float64)
    u, m = step(u, r, r == bounds[track[r]])
    v, n = step(v, r, sections.start_n[r])
    rho = float(sections.rho_n[r])
    if rho > 0:
      assert bounds[track[r]] <= sections.source_n[r] < r
      z[r] = rho * z[sections.source_n[r]] + np.sqrt(1 - rho**2) * (
          s[0] * eps[r] + s[1:-1] @ v + s[-1] * n)
    else:
      z[r] = s[0] * eps[r] + s[1:-1] @ u + s[-1] * m
  return z


_REPEAT = {'p': 0.6, 'lags': [8, 10, 12, 16, 24, 30, 40, 60, 80, 100, 150],
           'rhos': [0.8, 0.85, 0.9, 0.9, 0.92, 0.95, 0.95, 0.97, 0.98, 0.99, 1.0]}


def test_layout_fills_the_shard_with_training_lengths_and_cuts_the_last():
  lengths, profile = [5, 17, 40], [0, 1, 2]
  bounds, sections = tracks.layout(3, 1, 300, lengths, profile)
  assert bounds[0] == 0 and bounds[-1] == 300 and np.all(np.diff(bounds) > 0)
  sizes = np.diff(bounds)
  assert set(sizes[:-1]) <= set(lengths) and sizes[-1] <= max(lengths)
  np.testing.assert_array_equal(np.asarray(lengths)[sections.mirror_t[:-1]], sizes[:-1])
  np.testing.assert_array_equal(np.asarray(profile)[sections.mirror_t], sections.profile_t)
  assert not sections.rho_n.any()  # No repetition fitted: no repeats.
  again = tracks.layout(3, 1, 300, lengths, profile)
  np.testing.assert_array_equal(bounds, again[0])
  assert not np.array_equal(bounds, tracks.layout(3, 2, 300, lengths, profile)[0])
  fixed, _ = tracks.layout(3, 1, 100, lengths, profile, length=30)
  np.testing.assert_array_equal(fixed, [0, 30, 60, 90, 100])


def test_repeats_replay_earlier_rows_of_their_own_track_about_one_drawn_distance_back():
  bounds, sections = tracks.layout(0, 0, 20_000, [400, 900], [0, 1], repeats=[_REPEAT] * 2,
                                   jitter=0.1)
  rows = np.arange(20_000)
  replay = sections.rho_n > 0
  assert 0.3 < replay.mean() < 0.9
  track = np.searchsorted(bounds, rows, side='right') - 1
  source = sections.source_n[replay]
  assert np.all(source < rows[replay]) and np.all(source >= bounds[track[replay]])
  np.testing.assert_array_equal(sections.source_n[~replay], rows[~replay])
  # Never a row of its own period: the second process restarts in between.
  last_restart = np.maximum.accumulate(np.where(sections.start_n, rows, 0))
  assert np.all(source < last_restart[replay])
  assert sections.rho_n[replay].min() >= 0.8 and sections.rho_n.max() <= 1.0
  distance = rows[replay] - source
  assert 8 <= np.median(distance) <= 150
  # The share of windows in a repeat or repeated grows with the repeat probability.
  shares = [np.mean([tracks.replay_share(400, {**_REPEAT, 'p': p}, 0.0, np.random.default_rng(i))
                     for i in range(8)]) for p in (0.0, 0.5, 1.0)]
  assert shares[0] == 0 and shares[0] < shares[1] < shares[2]


@pytest.mark.parametrize('num_devices, batch', [(1, 256), (4, 700), (4, 2048)])
def test_track_noise_follows_its_definition_whatever_the_batch(num_devices, batch):
  mesh = sharding.data_mesh(jax.devices()[:num_devices])
  batch = sharding.round_up(batch, mesh)
  dim, rows = 8, 2500
  bounds, sections = tracks.layout(7, 2, rows, [300, 900, 40], [0, 1, 0], repeats=[_REPEAT] * 3,
                                   jitter=0.1)
  weights = [[0.1, 0.0, 0.2, 0.0, 0.3, 0.0, 0.1, 0.1], [0.0, 0.5, 0.0, 0.0, 0.0, 0.2, 0.0, 0.2]]
  plan = {'rates': list(tracks.RATES), 'scales': tracks.scales(weights).tolist(),
          'history': tracks.history_rows([300, 900, 40])}
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in tracks.shard_noise(
      plan, 7, 2, bounds, sections, batch, dim, mesh)])[:rows]
  expected = _reference_noise(7, 2, bounds, sections, plan['scales'], dim)
  np.testing.assert_allclose(z, expected, atol=1e-5)


def test_track_noise_is_unit_normal_and_correlated_as_fitted():
  mesh = sharding.data_mesh(jax.devices()[:1])
  dim, rows = 64, 4096
  weights = [[0.0, 0.3, 0.0, 0.0, 0.0, 0.3, 0.0, 0.2]]
  plan = {'rates': list(tracks.RATES), 'scales': tracks.scales(weights).tolist(), 'history': 4096}
  bounds, plain = tracks.layout(0, 0, rows, [rows], [0])
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in tracks.shard_noise(
      plan, 0, 0, bounds, plain, 1024, dim, mesh)])
  assert abs(z.std() - 1) < 0.03 and abs(z.mean()) < 0.03
  for lag in (1, 4):
    expected = temporal.component_correlation(tracks.RATES, [lag]) @ np.asarray(weights[0])
    assert abs(np.mean(z[lag:] * z[:-lag]) - expected[0]) < 0.05
  # Repeats keep every row's variance and come back as close as their rho.
  _, looped = tracks.layout(0, 0, rows, [rows], [0], repeats=[_REPEAT], jitter=0.1)
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in tracks.shard_noise(
      plan, 0, 0, bounds, looped, 1024, dim, mesh)])
  replay = np.flatnonzero(looped.rho_n > 0)
  assert 0.97 < z[replay].std() < 1.03 and 0.97 < z.std() < 1.03
  closeness = np.mean(z[replay] * z[looped.source_n[replay]], axis=1)
  assert abs(np.mean(closeness - looped.rho_n[replay])) < 0.02
  # No weight and no repeat: exactly the rows' noise.
  white = {'rates': list(tracks.RATES), 'scales': tracks.scales([[0.0] * 8]).tolist(),
           'history': 1}
  z0 = next(tracks.shard_noise(white, 0, 0, bounds, plain, 1024, dim, mesh))[1]
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
    assert len(profile['weights']) == len(tracks.RATES) + 1  # And the moving average.
  # One repetition per training track, its share of strong far matches read off the real rows.
  assert len(fit['repeats']) == 2 and 0 <= fit['jitter'] <= 1
  for repeat in fit['repeats']:
    assert 0 <= repeat['p'] <= 1 and 0 <= repeat['share'] <= 1
    assert len(repeat['rhos']) == len(repeat['lags']) in (0, len(temporal.LEVELS))
  # Asking again with the same settings reads it; other settings fit again.
  sample_cfg = cli.run_config(files.read_config(workdir)).sample
  mtime = (workdir / tracks.FILE).stat().st_mtime_ns
  assert tracks.ensure_fit(generator.load_sampler(workdir, sample_cfg)) == fit
  assert (workdir / tracks.FILE).stat().st_mtime_ns == mtime
  # A fit by the older generator (AR weights only, no sections) is read and fitted again.
  older = {k: v for k, v in fit.items() if k not in ('repeats', 'jitter', 'strong')}
  files.write_json(workdir / tracks.FILE, {**older, 'generator': 'ar-noise/1'})
  assert tracks.ensure_fit(generator.load_sampler(workdir, sample_cfg)) == fit


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
  workdir = _run_with_weights(trained_run, tmp_path, [0, 0, 0, 0.9, 0, 0, 0, 0])
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
