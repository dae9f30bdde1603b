"""Sampling to shards: determinism, resume, refusals, and the sample.py command line."""

import collections
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from rfp import cli, files, generator, sample_folder, sampling, sharding
from rfp.errors import InputError
from conftest import ROOT, SCRIPT_ENV, kill_when


def _sample_cli(*args, timeout=300):
  return subprocess.run([sys.executable, str(ROOT / 'sample.py'), '--no-progress', *args],
                        capture_output=True, text=True, env=SCRIPT_ENV, cwd=ROOT, timeout=timeout)


def _write(workdir, out, n, shards, progress=False, devices=None, **settings):
  """sampling.write_samples with the run's config.sample, `settings` overridden."""
  sample_cfg = cli.run_config(files.read_config(workdir)).sample
  sample_cfg.n, sample_cfg.shards = n, shards
  for key, value in settings.items():
    sample_cfg[key] = value
  return sampling.write_samples(workdir, out, sample_cfg, progress=progress, devices=devices)


def test_lookahead_keeps_order_and_at_most_depth_calls_in_flight():
  pulled = []

  def calls():
    for i in range(6):
      pulled.append(i)
      yield i

  taken = []
  for x in sampling.lookahead(calls(), depth=2):
    assert len(pulled) - len(taken) <= 3  # This one and two ahead: device memory stays bounded.
    taken.append(x)
  assert taken == list(range(6)) and pulled == taken


def test_shards_do_not_depend_on_devices_or_batch_size(trained_run, tmp_path):
  workdir, _, _ = trained_run
  runs = {}
  for name, devices, batch in [('one', jax.devices()[:1], 512), ('four', jax.devices(), 700)]:
    _write(workdir, tmp_path / name, 2500, 3, seed=5, dtype='float32',
                         batch_size=batch, progress=False, devices=devices)
    runs[name] = sample_folder.open_samples(tmp_path / name)
  for a, b in zip(runs['one'], runs['four']):
    assert a.shape == b.shape and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
  # De-normalised back to the data: near-unit norms, like the training rows.
  norms = np.linalg.norm(np.concatenate(runs['one']), axis=1)
  assert 0.7 < np.median(norms) < 1.3


def test_manifest_and_sphere(trained_run, tmp_path):
  workdir, _, _ = trained_run
  # No sphere setting: the training rows are unit-norm, so the samples are too,
  # though 3 heun steps of a tiny model leave raw rows of quite other norms.
  manifest = _write(workdir, tmp_path / 's', 1001, 4, seed=2, steps=3, solver='heun')
  assert manifest['sphere'] is True
  calibrated = json.loads((workdir / 'calibration.json').read_text())
  assert manifest['temperature'] == calibrated['temperature']
  on_disk = json.loads((tmp_path / 's' / 'manifest.json').read_text())
  assert manifest == on_disk
  assert manifest['rows_per_shard'] == [251, 250, 250, 250]
  assert (manifest['solver'], manifest['steps'], manifest['network_evaluations']) == ('heun', 3, 6)
  assert manifest['checkpoint']['step'] > 0 and manifest['model']['dim'] == 16
  rows = sample_folder.open_samples(tmp_path / 's')
  assert [len(r) for r in rows] == [251, 250, 250, 250]
  assert all(r.dtype == np.float16 and not r.flags.writeable for r in rows)
  np.testing.assert_allclose(np.linalg.norm(np.concatenate(rows).astype(np.float32), axis=1),
                             1.0, atol=2e-3)
  _write(workdir, tmp_path / 'raw', 1001, 4, seed=2, steps=3, solver='heun', sphere=False)
  raw = np.concatenate(sample_folder.open_samples(tmp_path / 'raw')).astype(np.float32)
  assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 0.05


def test_resume_keeps_complete_shards_and_redoes_partial_ones(trained_run, tmp_path):
  workdir, _, _ = trained_run
  kwargs = dict(n=3000, shards=4, seed=1, batch_size=512, progress=False)
  _write(workdir, tmp_path / 'clean', **kwargs)
  out = tmp_path / 'resumed'
  _write(workdir, out, **kwargs)
  # As after a crash: shard 2 half-written, shard 3 never started.
  for i in (2, 3):
    sample_folder.shard_path(out, i).unlink()
  tmp = sample_folder.shard_path(out, 2).with_name('shard-00002.npy.tmp')
  tmp.write_bytes(sample_folder.shard_path(tmp_path / 'clean', 2).read_bytes()[:1000])
  with pytest.raises(InputError, match='shard 2 of 4 is partial'):
    sample_folder.open_samples(out)
  kept = {i: os.stat(sample_folder.shard_path(out, i)) for i in (0, 1)}

  _write(workdir, out, **kwargs)

  for i in (0, 1):
    after = os.stat(sample_folder.shard_path(out, i))
    assert (after.st_ino, after.st_mtime_ns) == (kept[i].st_ino, kept[i].st_mtime_ns)
  assert not list(out.glob('*.tmp'))
  for i in range(4):
    assert (sample_folder.shard_path(out, i).read_bytes()
            == sample_folder.shard_path(tmp_path / 'clean', i).read_bytes())


def test_different_settings_are_refused(trained_run, tmp_path):
  workdir, _, _ = trained_run
  _write(workdir, tmp_path, 600, 2, seed=0, progress=False)
  for change in [dict(seed=1), dict(n=700), dict(shards=3), dict(solver='midpoint'),
                 dict(steps=2), dict(dtype='float32'), dict(sphere=False)]:
    args = {'n': 600, 'shards': 2, 'seed': 0, **change}
    with pytest.raises(InputError, match='other settings'):
      _write(workdir, tmp_path, args.pop('n'), args.pop('shards'), progress=False,
                           **args)
  # The same settings (any batch size) are a no-op resume.
  _write(workdir, tmp_path, 600, 2, seed=0, batch_size=128, progress=False)


def test_too_little_disk_is_refused(trained_run, tmp_path, monkeypatch):
  workdir, _, _ = trained_run
  usage = collections.namedtuple('Usage', 'total used free')
  monkeypatch.setattr(files.shutil, 'disk_usage', lambda _: usage(10**9, 10**9 - 1000, 1000))
  # 4000 rows x 16 dims x 2 bytes in two .npy files, headers included.
  with pytest.raises(InputError, match=r'2 shards need 128\.3 kB but only 1\.0 kB is free'):
    _write(workdir, tmp_path, 4000, 2, progress=False)
  assert not list(tmp_path.glob('shard-*'))


def test_open_samples_refuses_incomplete_folders(trained_run, tmp_path):
  with pytest.raises(InputError, match='no manifest.json'):
    sample_folder.open_samples(tmp_path)
  workdir, _, _ = trained_run
  _write(workdir, tmp_path, 300, 3, progress=False)
  sample_folder.shard_path(tmp_path, 1).unlink()
  with pytest.raises(InputError, match='shard 1 of 3 is missing'):
    sample_folder.open_samples(tmp_path)
  manifest = tmp_path / 'manifest.json'
  manifest.write_text('{"dim": 16}')
  with pytest.raises(InputError, match='unreadable manifest \\(no rows_per_shard, dtype\\)'):
    sample_folder.open_samples(tmp_path)
  manifest.write_text('{"dim": ')
  with pytest.raises(InputError, match='unreadable manifest'):
    sample_folder.open_samples(tmp_path)


def test_killed_run_resumes_to_the_same_files(trained_run, tmp_path):
  workdir, _, _ = trained_run
  _write(workdir, tmp_path / 'clean', 24_000, 12, seed=3, batch_size=1000,
                       progress=False)
  out = tmp_path / 'killed'
  args = ['--workdir', str(workdir), '--out', str(out), '--n', '24000', '--shards', '12',
          '--seed', '3', '--config.sample.batch_size=1000']
  kill_when([sys.executable, str(ROOT / 'sample.py'), '--no-progress', *args],
            lambda: sample_folder.shard_path(out, 0).exists(), timeout=120)
  assert len(list(out.glob('shard-*.npy'))) < 12, 'finished before it could be killed'

  resumed = _sample_cli(*args)
  assert resumed.returncode == 0, resumed.stderr
  names = sorted(p.name for p in out.iterdir())
  assert names == sorted(p.name for p in (tmp_path / 'clean').iterdir())
  for i in range(12):
    assert (sample_folder.shard_path(out, i).read_bytes()
            == sample_folder.shard_path(tmp_path / 'clean', i).read_bytes())


@pytest.mark.parametrize('args, message', [
    (['--n', '0'], 'n=0: expected a positive integer'),
    (['--n', '5', '--shards', '10'], 'n=5 is smaller than shards=10'),
    (['--n', '10', '--config.sample.solver=rk4'], "solver='rk4'"),
    (['--n', '10', '--config.sample.dtype=int8'], "dtype='int8'"),
    (['--n', 'ten'], "argument --n: invalid int value: 'ten'"),
    (['--n', '10', '--workdir', '/nonexistent/run'], 'run folder not found'),
    (['--n', '10', '--workdir', str(ROOT / 'configs')], 'no config.json'),
])
def test_bad_arguments_fail_with_one_line(trained_run, args, message):
  if '--workdir' not in args:
    args = ['--workdir', str(trained_run[0]), *args]
  result = _sample_cli(*args)
  assert result.returncode == 2
  assert result.stderr.startswith('error: ') and message in result.stderr, result.stderr
  assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr


def test_an_unwritable_out_folder_fails_in_one_line_before_sampling(trained_run, tmp_path):
  (tmp_path / 'file').write_text('')
  result = _sample_cli('--workdir', str(trained_run[0]), '--out', str(tmp_path / 'file' / 'out'),
                       '--n', '10')
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  assert result.stderr.startswith(f'error: {tmp_path / "file" / "out"}: cannot be created: '
                                  f'{tmp_path / "file"} is a file')


def test_cli_refuses_run_without_checkpoint_and_other_settings(trained_run, tmp_path):
  workdir, _, _ = trained_run
  bare = tmp_path / 'bare'
  bare.mkdir()
  for name in ('config.json', 'stats.json'):
    (bare / name).write_bytes((workdir / name).read_bytes())
  result = _sample_cli('--workdir', str(bare), '--n', '10')
  assert result.returncode == 2 and 'no best checkpoint' in result.stderr, result.stderr

  out = tmp_path / 'out'
  first = _sample_cli('--workdir', str(workdir), '--out', str(out), '--n', '64')
  assert first.returncode == 0, first.stderr
  second = _sample_cli('--workdir', str(workdir), '--out', str(out), '--n', '64', '--seed', '9')
  assert second.returncode == 2 and second.stderr.count('\n') == 1
  assert 'other settings (seed 0 -> 9)' in second.stderr, second.stderr


def test_more_rows_extend_each_shard(trained_run, tmp_path):
  workdir, _, _ = trained_run
  small = _write(workdir, tmp_path / 'small', 900, 2, dtype='float32',
                               batch_size=256, progress=False)
  _write(workdir, tmp_path / 'large', 2500, 2, dtype='float32', batch_size=512,
                       progress=False)
  for i, (a, b) in enumerate(zip(sample_folder.open_samples(tmp_path / 'small'),
                                 sample_folder.open_samples(tmp_path / 'large'))):
    assert len(a) == small['rows_per_shard'][i] < len(b)
    np.testing.assert_allclose(a, b[:len(a)], atol=1e-5)


def test_rows_are_checked_for_nan_as_they_are_written(trained_run, tmp_path, monkeypatch):
  workdir, _, _ = trained_run
  manifest = _write(workdir, tmp_path / 'ok', 600, 2)
  assert manifest['checked_finite']
  real_generator = generator.Sampler.generator

  def diverging(self, mesh, **kwargs):
    generate = real_generator(self, mesh, **kwargs)

    def generate_nan(params, z_bd):
      x_bd = np.array(generate(params, z_bd))
      x_bd[3, 1] = np.nan
      return x_bd

    return generate_nan

  monkeypatch.setattr(generator.Sampler, 'generator', diverging)
  with pytest.raises(InputError, match=r'shard-00000\.npy: row 3 holds NaN or Inf'):
    _write(workdir, tmp_path / 'bad', 600, 2)
  assert not list((tmp_path / 'bad').glob('shard-*.npy'))  # Left partial (.tmp), never complete.
