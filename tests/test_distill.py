"""Distillation: the one-step student lands on the teacher's distribution, its
run folder samples through the normal path, and an interrupted run resumes exactly."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from rfp import checkpoint, cli, distill, files, generator, metrics, model as model_lib, sharding
from rfp.errors import InputError
from conftest import ROOT, SCRIPT_ENV, config_flags, mixture, tiny_config, tiny_items

# One-step distillation, 32 steps per epoch.
STUDENT = {'train.distill_pairs': 8192, 'train.epochs': 12, 'train.batch_size': 256,
           'train.warmup_steps': 0, 'train.lr': 3e-3}


def student_config(teacher_dir, **overrides):
  config = tiny_config(files.read_config(teacher_dir)['data']['train'])
  for key, value in {'train.distill_from': str(teacher_dir), **STUDENT, **overrides}.items():
    cli.apply_override(config, f'{key}={value!r}')
  return config


@pytest.fixture(scope='module')
def student_run(trained_run, tmp_path_factory):
  """(student workdir, teacher workdir, train rows, centres)."""
  teacher, x, centres = trained_run
  workdir = tmp_path_factory.mktemp('student') / 'run'
  distill.distill_and_evaluate(student_config(teacher), workdir, progress=False)
  return workdir, teacher, x, centres


def _samples(workdir, n=2000, seed=7):
  """Rows sampled with the run's own sample settings (steps, solver, temperature)."""
  config, params, stats, meta = checkpoint.load_run(workdir)
  mesh = sharding.data_mesh()
  temperature = json.loads((workdir / 'calibration.json').read_text())
  assert temperature['step'] == meta['step']
  generate = generator.make_generator(model_lib.from_config(config.model), config.sample.steps,
                                      config.sample.solver, mesh,
                                      temperature=temperature['temperature'])
  rows = generator.generate_rows(generate, params, seed, 0, n, config.model.dim, 1000, mesh)
  return stats.denormalize(rows)


def test_one_step_student_lands_on_the_mixture(student_run):
  workdir, teacher, x_train, centres = student_run
  student, taught = _samples(workdir), _samples(teacher)
  held_out, _ = mixture(2000, seed=1)
  gaussian = np.random.default_rng(0).multivariate_normal(*metrics.moments(x_train), 2000)

  def to_nearest_mode(x):
    d = np.linalg.norm(x[:, None] - centres[None], axis=-1)
    return d.min(1).mean(), np.bincount(d.argmin(1), minlength=len(centres)) / len(x)

  real_dist, real_share = to_nearest_mode(held_out)
  student_dist, student_share = to_nearest_mode(student)
  teacher_dist, teacher_share = to_nearest_mode(taught)
  gauss_dist, _ = to_nearest_mode(gaussian)
  # One network evaluation from plain noise: rows sit on the modes (not
  # between them, as a blurred one-step sampler would put them), in the data's shares.
  assert student_dist < 0.6 * gauss_dist, (real_dist, student_dist, teacher_dist, gauss_dist)
  assert student_dist < 1.3 * teacher_dist, (student_dist, teacher_dist)
  # Every mode, in the teacher's shares (the tiny teacher's own are a little off the data's).
  assert student_share.min() > 0.04, (student_share, real_share)
  assert np.abs(student_share - teacher_share).max() < 0.03, (student_share, teacher_share)
  # Moments and marginals: the teacher's (which a Gaussian's FD would not tell apart).
  assert metrics.frechet_distance(student, taught) < 0.02
  q = np.linspace(0.05, 0.95, 7)
  np.testing.assert_allclose(np.quantile(student, q, axis=0), np.quantile(taught, q, axis=0),
                             atol=0.08)


def test_student_follows_the_teacher_pair_by_pair(student_run):
  workdir = student_run[0]
  records = files.read_metrics(workdir)
  assert [r['phase'] for r in records] == ['distill'] * 12
  # Held-out noise: the student's row is close to the teacher's from the same noise.
  assert records[-1]['val_pair_mse'] < 0.5 * records[0]['val_pair_mse']
  assert records[-1]['val_pair_mse'] < 0.1
  _, _, _, meta = checkpoint.load_run(workdir)
  best = min(records, key=lambda r: r['val_teacher_gap'])
  assert meta['select'] == 'teacher' and meta['step'] == best['step']


def test_run_folder_is_an_ordinary_run_of_one_step(student_run):
  workdir, teacher, *_ = student_run
  config = files.read_config(workdir)
  assert (config['sample']['solver'], config['sample']['steps']) == ('euler', 1)
  assert config['model'] == files.read_config(teacher)['model']
  assert (workdir / 'stats.json').read_text() == (teacher / 'stats.json').read_text()
  source = json.loads((workdir / distill.FILE).read_text())
  teacher_cal = json.loads((teacher / 'calibration.json').read_text())
  assert source['temperature'] == teacher_cal['temperature']
  assert source['step'] == files.checkpoint_step(teacher, 'best')
  saved = json.loads((workdir / 'calibration.json').read_text())
  assert saved['step'] == files.checkpoint_step(workdir, 'best')
  assert saved['temperature'] in distill.TEMPERATURES and saved['gaps_relative_to'] == 'teacher'
  # The chosen temperature brings the student's probe gaps closest to the teacher's.
  off = {float(t): np.mean(np.abs(list(g.values()))) for t, g in saved['gaps'].items()}
  assert off[saved['temperature']] == min(off.values())


def test_sample_py_samples_the_student_with_one_evaluation(student_run, tmp_path):
  workdir = student_run[0]
  out = tmp_path / 'samples'
  subprocess.run([sys.executable, 'sample.py', '--workdir', str(workdir), '--n', '1500',
                  '--out', str(out), '--quiet'], cwd=ROOT, env=SCRIPT_ENV, check=True)
  manifest = json.loads((out / 'manifest.json').read_text())
  temperature = json.loads((workdir / 'calibration.json').read_text())['temperature']
  assert (manifest['solver'], manifest['steps'], manifest['network_evaluations'],
          manifest['temperature']) == ('euler', 1, 1, temperature)
  assert manifest['distilled_from'] == json.loads((workdir / distill.FILE).read_text())
  config, params, stats, _ = checkpoint.load_run(workdir)
  mesh = sharding.data_mesh()
  generate = generator.make_generator(model_lib.from_config(config.model), 1, 'euler', mesh,
                                      stats=stats, sphere=manifest['sphere'],
                                      temperature=temperature)
  expected = generator.generate_rows(generate, params, 0, 0, 1500, config.model.dim, 500, mesh)
  np.testing.assert_allclose(np.load(out / 'shard-00000.npy'), expected, atol=2e-3)


def test_interrupted_run_resumes_to_the_same_student(student_run, tmp_path):
  workdir, teacher, *_ = student_run
  config = student_config(teacher, **{'train.epochs': 3, 'train.distill_reflow_epochs': 1})
  whole = distill.distill_and_evaluate(config, tmp_path / 'whole', progress=False)
  cut = tmp_path / 'cut'
  distill.distill_and_evaluate(config, cut, stop_after=45, progress=False)
  (cut / 'pairs' / 'pairs-00000.npy').unlink()  # Lost: drawn again from its keys.
  resumed = distill.distill_and_evaluate(config, cut, progress=False)
  timeless = lambda records: [{k: v for k, v in r.items() if k != 'steps_per_s'} for r in records]
  assert timeless(resumed['records']) == timeless(whole['records'])
  assert [r['phase'] for r in resumed['records']] == ['reflow', 'distill', 'distill']
  a = checkpoint.load_run(tmp_path / 'whole')[1]
  b = checkpoint.load_run(cut)[1]
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # The same pairs as the longer run's: one teacher, one noise.
  np.testing.assert_array_equal(np.load(cut / 'pairs' / 'pairs-00000.npy'),
                                np.load(workdir / 'pairs' / 'pairs-00000.npy'))


def test_train_py_distils_when_given_a_teacher(trained_run, tmp_path):
  teacher = trained_run[0]
  items = {**tiny_items(files.read_config(teacher)['data']['train']), **STUDENT,
           'train.distill_from': str(teacher)}
  subprocess.run([sys.executable, 'train.py', '--workdir', str(tmp_path / 'run'), '--quiet',
                  '--stop-after', '5', *config_flags(items)],
                 cwd=ROOT, env=SCRIPT_ENV, check=True, capture_output=True)
  assert files.checkpoint_step(tmp_path / 'run', 'latest') == 5
  assert (tmp_path / 'run' / distill.FILE).exists()


def test_refuses_a_missing_teacher(trained_run, tmp_path):
  config = student_config(trained_run[0], **{'train.distill_from': str(tmp_path / 'nowhere')})
  with pytest.raises(InputError, match='nowhere'):
    distill.distill_and_evaluate(config, tmp_path / 'run', progress=False)


@pytest.mark.parametrize('item', ['train.distill_steps=0', 'train.distill_reflow_epochs=99',
                                  'train.distill_pairs=100'])
def test_refuses_bad_settings(trained_run, tmp_path, item):
  config = student_config(trained_run[0])
  cli.apply_override(config, item)
  with pytest.raises(InputError, match=item.split('=')[0]):
    distill.distill_and_evaluate(config, tmp_path / 'run', progress=False)


def test_a_shallower_student_starts_from_the_teachers_first_blocks(trained_run):
  teacher = trained_run[0]
  config, params, _, _ = checkpoint.load_run(teacher)
  shallow = config.model.copy_and_resolve_references()
  shallow.depth = 1
  start = distill.student_params(params, config.model, shallow, model_lib.from_config(shallow),
                                 jax.random.key(0))
  assert sorted(start['params']) == sorted(k for k in params['params'] if k != 'Block_1')
  jax.tree.map(np.testing.assert_array_equal, start['params']['Block_0'],
               params['params']['Block_0'])
  # Another width: nothing of the teacher's fits, the student starts from scratch.
  narrow = config.model.copy_and_resolve_references()
  narrow.width = 64
  fresh = distill.student_params(params, config.model, narrow, model_lib.from_config(narrow),
                                 jax.random.key(0))
  assert fresh['params']['Dense_1']['kernel'].shape == (config.model.dim, 64)


def test_a_shallower_student_is_an_ordinary_run_of_its_own_network(trained_run, tmp_path):
  teacher = trained_run[0]
  config = student_config(teacher, **{'train.epochs': 4, 'train.distill_model.depth': 1,
                                      'eval.num_queries': 7, 'system.name': 'other'})
  result = distill.distill_and_evaluate(config, tmp_path / 'run', progress=False)
  saved, taught = files.read_config(tmp_path / 'run'), files.read_config(teacher)
  assert saved['model'] == {**taught['model'], 'depth': 1}
  # The teacher's files, system and evaluation, whatever the distillation's config says.
  for section in ('data', 'system', 'eval'):
    assert saved[section] == taught[section], section
  records = result['records']
  assert records[-1]['val_pair_mse'] < records[0]['val_pair_mse']
  run_config, params, _, _ = checkpoint.load_run(tmp_path / 'run')
  assert run_config.model.depth == 1 and 'Block_1' not in params['params']


def test_refuses_a_student_of_no_blocks(trained_run, tmp_path):
  config = student_config(trained_run[0], **{'train.distill_model.depth': 0})
  with pytest.raises(InputError, match='train.distill_model.depth'):
    distill.distill_and_evaluate(config, tmp_path / 'run', progress=False)
