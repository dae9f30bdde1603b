"""Training end to end: it learns, it resumes exactly, it guards its run folder."""

import json
import subprocess
import sys
import tracemalloc

import jax
import numpy as np
import pytest

from rfp import (calibration, checkpoint, files, generator, metrics, model as model_lib, sharding,
                 training)
from rfp.errors import InputError
from conftest import ROOT, SCRIPT_ENV, config_flags, kill_when, mixture, tiny_config, tiny_items


def _samples(workdir, n=2000):
  config, params, stats, _ = checkpoint.load_run(workdir)
  mesh = sharding.data_mesh()
  generate = generator.make_generator(model_lib.from_config(config.model), 32, 'euler', mesh)
  rows = generator.generate_rows(generate, params, 7, 0, n, config.model.dim, 1000, mesh)
  return stats.denormalize(rows)


def test_trained_model_finds_the_mixture_modes(trained_run):
  workdir, x_train, centres = trained_run
  synthetic = _samples(workdir)
  held_out, _ = mixture(2000, seed=1)
  gaussian = np.random.default_rng(0).multivariate_normal(*metrics.moments(x_train), 2000)

  def to_nearest_mode(x):
    d = np.linalg.norm(x[:, None] - centres[None], axis=-1)
    return d.min(1).mean(), np.bincount(d.argmin(1), minlength=len(centres)) / len(x)

  real_dist, _ = to_nearest_mode(held_out)
  synth_dist, synth_share = to_nearest_mode(synthetic)
  gauss_dist, _ = to_nearest_mode(gaussian)
  # A moment-matched Gaussian has FD ~ 0 too, so the test looks at the modes:
  # samples must sit near them, far closer than the Gaussian's, and cover all.
  assert synth_dist < 0.6 * gauss_dist, (real_dist, synth_dist, gauss_dist)
  assert synth_share.min() > 0.04, synth_share
  assert metrics.frechet_distance(synthetic, held_out) < 0.05


def test_run_folder_holds_config_stats_log_and_best_checkpoint(trained_run):
  workdir = trained_run[0]
  records = files.read_metrics(workdir)
  assert [r['epoch'] for r in records] == [1, 2, 3, 4, 5, 6]
  assert records[-1]['loss'] < records[0]['loss']
  _, _, _, meta = checkpoint.load_run(workdir)
  best = min(records, key=lambda r: r['val_probe'])
  assert meta['select'] == 'probe' and meta['best_score'] == best['val_probe']
  assert meta['val_fd'] == best['val_fd'] and meta['epoch'] == best['epoch']
  saved = json.loads((workdir / 'calibration.json').read_text())
  assert saved['step'] == meta['step'] and saved['temperature'] in calibration.TEMPERATURES
  assert len(saved['gaps']) == len(calibration.TEMPERATURES)
  assert json.loads((workdir / 'config.json').read_text())['model']['width'] == 128


def test_interrupted_run_resumes_to_the_same_result(tmp_path, trained_run):
  reference_dir, x, _ = trained_run
  np.save(tmp_path / 'train.npy', x)
  config = tiny_config(tmp_path / 'train.npy')
  workdir = tmp_path / 'run'
  first = training.train_and_evaluate(config, workdir, stop_after=100)  # Mid-epoch 4.
  assert first['step'] == 100
  result = training.train_and_evaluate(config, workdir)
  assert result['step'] == result['total_steps']
  logged = files.read_metrics(workdir)
  expected = files.read_metrics(reference_dir)
  assert [r['epoch'] for r in logged] == [r['epoch'] for r in expected]
  np.testing.assert_allclose([r['val_fd'] for r in logged], [r['val_fd'] for r in expected],
                             rtol=1e-5)
  # Epoch 4 was cut at step 100: its loss still averages all of its steps.
  np.testing.assert_allclose([r['loss'] for r in logged], [r['loss'] for r in expected],
                             rtol=1e-6)
  resumed = checkpoint.load_run(workdir, 'latest')[1]
  straight = checkpoint.load_run(reference_dir, 'latest')[1]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), resumed, straight)


def test_a_run_folder_refuses_other_settings(tmp_path, trained_run):
  np.save(tmp_path / 'train.npy', trained_run[1])
  workdir = tmp_path / 'run'
  training.train_and_evaluate(tiny_config(tmp_path / 'train.npy', **{'train.epochs': 1}), workdir,
                           stop_after=3)
  with pytest.raises(InputError, match=r'model.depth 2 -> 3'):
    training.train_and_evaluate(tiny_config(tmp_path / 'train.npy', **{'train.epochs': 1,
                                                                     'model.depth': 3}), workdir)
  # Same settings and row count, new rows (a re-embedded file): also refused.
  np.save(tmp_path / 'train.npy', trained_run[1][::-1])
  with pytest.raises(InputError, match='rows differ from those the run'):
    training.train_and_evaluate(tiny_config(tmp_path / 'train.npy', **{'train.epochs': 1}), workdir)


def test_training_on_a_million_row_memmap_streams_it(tmp_path, million_row_memmap):
  config = tiny_config(million_row_memmap, dim=128, **{
      'data.in_memory_max_gb': 0.1, 'data.shuffle_buffer_rows': 1 << 15,
      'data.val_max': 2000, 'train.batch_size': 256})
  tracemalloc.start()
  result = training.train_and_evaluate(config, tmp_path / 'run', stop_after=20)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert result['step'] == 20
  assert peak < million_row_memmap.stat().st_size / 8, f'peak {peak / 2**20:.0f} MiB'


def test_ema_weights_are_what_gets_sampled(tmp_path, trained_run):
  np.save(tmp_path / 'train.npy', trained_run[1])
  config = tiny_config(tmp_path / 'train.npy', **{'train.epochs': 1, 'train.ema_decay': 0.9,
                                                 'train.time_dist': 'logit_normal'})
  training.train_and_evaluate(config, tmp_path / 'run')
  _, sampled, _, _ = checkpoint.load_run(tmp_path / 'run', 'latest')
  state, _ = checkpoint.restore(checkpoint.managers(tmp_path / 'run')[0])
  leaves = zip(jax.tree.leaves(sampled), jax.tree.leaves(state['ema']),
               jax.tree.leaves(state['params']))
  diffs = [(np.array_equal(s, e), float(np.abs(np.asarray(e) - np.asarray(p)).max()))
           for s, e, p in leaves]
  assert all(same for same, _ in diffs) and max(d for _, d in diffs) > 0


def test_killed_train_py_resumes_to_the_same_log(tmp_path, trained_run):
  """kill -9 at any point (here: mid-epoch, after a checkpoint), then the same command."""
  reference_dir, x, _ = trained_run
  np.save(tmp_path / 'train.npy', x)
  workdir = tmp_path / 'run'
  # As the trained_run fixture, checkpointing every 10 steps so the kill loses some.
  flags = config_flags(tiny_items(tmp_path / 'train.npy', **{'train.checkpoint_every': 10}))
  cmd = [sys.executable, str(ROOT / 'train.py'), '--quiet', '--workdir', str(workdir), *flags]
  kill_when(cmd, lambda: (files.checkpoint_step(workdir, 'latest') or 0) >= 60)  # In epoch 3.
  assert (files.checkpoint_step(workdir, 'latest') or 0) < 168, 'finished before the kill'
  resumed = subprocess.run(cmd, cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True,
                           timeout=600)
  assert resumed.returncode == 0, resumed.stderr
  logged, expected = files.read_metrics(workdir), files.read_metrics(reference_dir)
  assert [r['epoch'] for r in logged] == [r['epoch'] for r in expected]
  for key in ('loss', 'val_fd'):
    np.testing.assert_allclose([r[key] for r in logged], [r[key] for r in expected], rtol=1e-5)


def test_model_dim_comes_from_the_data_unless_the_config_sets_another(tmp_path):
  x, _ = mixture(1000, dim=8)
  np.save(tmp_path / 'x8.npy', x)
  with pytest.raises(InputError, match=r'x8.npy: embeddings have dimension 8 but the config sets '
                     r'model.dim=16; pass --config.model.dim=8'):
    training.train_and_evaluate(tiny_config(tmp_path / 'x8.npy', dim=16), tmp_path / 'bad')
  assert not (tmp_path / 'bad').exists()
  config = tiny_config(tmp_path / 'x8.npy', dim=None, **{'train.epochs': 1})
  training.train_and_evaluate(config, tmp_path / 'run', stop_after=2, progress=False)
  assert files.read_config(tmp_path / 'run')['model']['dim'] == 8
  assert config.model.dim is None  # The caller's config is left as it was.


def test_a_finished_run_continues_for_more_epochs(tmp_path, capsys):
  x, _ = mixture(1000)
  np.save(tmp_path / 'x.npy', x)
  workdir = tmp_path / 'run'
  short = training.train_and_evaluate(tiny_config(tmp_path / 'x.npy', **{'train.epochs': 1}),
                                      workdir, progress=False)
  assert short['step'] == short['total_steps'] == 7  # 900 training rows, batches of 128.
  longer = training.train_and_evaluate(tiny_config(tmp_path / 'x.npy', **{'train.epochs': 2}),
                                       workdir, progress=False)
  assert longer['step'] == longer['total_steps'] == 14
  assert 'continuing from 1 to 2 epochs; the learning-rate schedule now ends at step 14 ' \
         '(was 7)' in capsys.readouterr().out
  assert [(r['epoch'], r['epochs']) for r in files.read_metrics(workdir)] == [(1, 1), (2, 2)]
  assert files.read_config(workdir)['train']['epochs'] == 2
  with pytest.raises(InputError, match='train.epochs can grow .* but not shrink to 1'):
    training.train_and_evaluate(tiny_config(tmp_path / 'x.npy', **{'train.epochs': 1}), workdir)


def test_an_unwritable_or_full_run_folder_is_refused_before_any_work(tmp_path, monkeypatch):
  x, _ = mixture(1000)
  np.save(tmp_path / 'x.npy', x)
  config = tiny_config(tmp_path / 'x.npy')
  (tmp_path / 'file').write_text('')
  with pytest.raises(InputError, match=r'file/run: cannot be created: .*file is a file'):
    training.train_and_evaluate(config, tmp_path / 'file' / 'run')
  usage = files.shutil.disk_usage(tmp_path)
  monkeypatch.setattr(files.shutil, 'disk_usage', lambda _: usage._replace(free=1000))
  with pytest.raises(InputError, match=r'run: checkpoints need .* MB but only 1.0 kB is free'):
    training.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()
