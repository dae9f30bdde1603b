"""Distilling a trained run into a sampler of one or two network evaluations.

The teacher is a finished run sampled as `sample.py` samples it (its solver,
steps and calibrated temperature T): it maps noise z to a row
x = teacher(T z). The student is a copy of the teacher's network, or a
cheaper one (`train.distill_model`: fewer blocks start from the teacher's
first ones, another width or hidden size from scratch), that learns
the straight path between the two ends of each such pair: the rectified-flow
loss on the fixed pairs (reflow, Liu et al. 2023), with times drawn
uniformly for `train.distill_reflow_epochs` epochs, then only at the times
the student's own Euler steps visit (distillation: for one step, t = 1 alone,
where the loss is `|z - v(z, 1) - x|^2`). Its samples are one Euler step (or
`train.distill_steps`) from noise: T is in the pairs already, and the
student's own temperature is calibrated afterwards on a fine grid near 1
(`TEMPERATURES`), against the teacher's probe gaps.

The student's run folder is an ordinary run (config.json with the student's
sample.steps and solver, stats.json, ckpt/{latest,best}, metrics.jsonl,
calibration.json with the student's temperature), so sample.py and
evaluate.py use it unchanged, plus

    WORKDIR/distill.json        the teacher: folder, checkpoint step, solver, steps, temperature
    WORKDIR/pairs/pairs-NNNNN.npy   the teacher's rows (normalised, float32) of one chunk of noise

The noise of chunk c is that of shard `PAIR_SHARDS + c` of `train.seed` as
`rfp.noise` draws it, far from any shard sample.py writes, so neither the
validation rows (shard 0) nor later samples reuse the noise the student
learned from. Chunks are written atomically and kept, so an interrupted run
regenerates only the missing ones; the student trains in the loop training
uses (`rfp.loop`), so it resumes, selects and calibrates alike.

Each epoch ends by sampling the validation rows with the student and with the
teacher from the same noise (shard 0, as training does) and comparing them
with the query-free probe gaps of `rfp.evaluation.hardness`: the `best`
checkpoint is the one whose gaps are closest to the teacher's.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rfp import (calibration, checkpoint, data, files, flow, generator, loop, model as model_lib,
                 noise as noise_lib, optimizer as optimizer_lib, sharding, training)
from rfp.errors import InputError, check_positive_int
from rfp.evaluation import hardness

FILE = 'distill.json'
CHUNK_ROWS = 16_384  # Pairs per file: a multiple of `noise.BLOCK_ROWS`.
PAIR_SHARDS = 1 << 30  # Shard id of chunk 0's noise (sample.py's shards count from 0).
SOLVER = 'euler'  # The student's: on straight paths every solver step is the same.
# The student's own noise scale, chosen like the teacher's (`rfp.calibration`)
# but against the teacher's probe gaps: its rows are a little blurred, and a
# temperature a little below 1 sharpens them as it does the teacher's.
TEMPERATURES = (1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825, 0.8, 0.775, 0.75)
# The student's own settings: resuming with any of them changed would mix two runs.
_RUN_IDENTITY = ('train.distill_from', 'train.distill_pairs', 'train.distill_steps',
                 'train.distill_reflow_epochs', 'train.batch_size', 'train.seed', 'train.lr',
                 'train.lr_end', 'train.warmup_steps', 'train.distill_model')


def loss(v_fn, z_bd, x_bd, t_b):
  """Rectified-flow loss on fixed pairs: v(x_t, t) against z - x at x_t = t z + (1-t) x."""
  v_bd = v_fn(flow.interpolate(x_bd, z_bd, t_b), t_b)
  return jnp.mean((v_bd - (z_bd - x_bd))**2)


def sample_times(key, n, steps, reflow):
  """Training times: uniform in [0, 1) (reflow), else the starts of the
  student's `steps` Euler steps, 1, 1 - 1/steps, ..., 1/steps, equally often."""
  if reflow:
    return jax.random.uniform(key, (n,))
  return 1.0 - jax.random.randint(key, (n,), 0, steps) / steps


def train_step(model, optimizer, state, z_bd, x_bd, key, steps, reflow):
  """One optimiser step of the student on a batch of pairs; returns (state, metrics)."""
  t_b = sample_times(key, x_bd.shape[0], steps, reflow)

  def loss_fn(params):
    return loss(lambda x, t: model.apply(params, x, t), z_bd, x_bd, t_b)

  value, grads = jax.value_and_grad(loss_fn)(state['params'])
  updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
  return ({'step': state['step'] + 1, 'params': optax.apply_updates(state['params'], updates),
           'opt_state': opt_state}, {'loss': value})


def noise_rows(seed, shard, n, dim, batch_size, mesh):
  """Rows [0, n) of a shard's noise, as `generator.generate_rows` draws them."""
  noise = noise_lib.make_noise(dim, batch_size, mesh)
  return np.concatenate([jax.device_get(noise(np.uint32(seed), np.int32(shard), np.int32(s)))
                         for s in range(0, n, batch_size)])[:n]


def chunk_sizes(pairs):
  return [min(CHUNK_ROWS, pairs - start) for start in range(0, pairs, CHUNK_ROWS)]


def chunk_path(workdir, c):
  return pathlib.Path(workdir) / 'pairs' / f'pairs-{c:05d}.npy'


def make_pairs(workdir, teacher_generate, teacher_params, seed, pairs, dim, batch_size, mesh,
               progress=True):
  """(z, x): `pairs` rows of noise and the teacher's rows from them (normalised space).

  The teacher's rows are cached chunk by chunk in WORKDIR/pairs; the noise is
  drawn again from its keys.
  """
  sizes = chunk_sizes(pairs)
  (pathlib.Path(workdir) / 'pairs').mkdir(parents=True, exist_ok=True)
  z, x = [], []
  for c in tqdm(range(len(sizes)), desc='teacher pairs', unit='chunk', disable=not progress):
    path = chunk_path(workdir, c)
    if not path.exists():
      rows = generator.generate_rows(teacher_generate, teacher_params, seed, PAIR_SHARDS + c,
                                     sizes[c], dim, batch_size, mesh)
      with files.atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.save(f, rows.astype(np.float32))
    x.append(np.load(path))
    z.append(noise_rows(seed, PAIR_SHARDS + c, sizes[c], dim, batch_size, mesh))
  return np.concatenate(z), np.concatenate(x)


def _teacher(config):
  """(teacher run folder, its config, params, stats, meta, temperature)."""
  folder = pathlib.Path(config.train.distill_from)
  run, params, stats, meta = checkpoint.load_run(folder, 'best')
  temperature = calibration.temperature(run.sample, folder, meta['step'])
  return folder, run, params, stats, meta, temperature


def _student_config(config, teacher_run):
  """The student's config: the teacher's data, system and eval sections (and
  statistics) whatever `config` says, so that it is evaluated on the teacher's
  files; the teacher's model but for `train.distill_model`'s settings; the
  given train section; and sampling with the student's Euler steps."""
  student = config.copy_and_resolve_references()
  student.data, student.system, student.eval = teacher_run.data, teacher_run.system, teacher_run.eval
  student.model = teacher_run.model.copy_and_resolve_references()
  for name, value in config.train.distill_model.items():
    if value is not None:
      check_positive_int(value, f'train.distill_model.{name}')
      student.model[name] = value
  student.sample.solver, student.sample.steps = SOLVER, config.train.distill_steps
  student.sample.temperature = None
  return student


def _check_config(cfg):
  for name in ('distill_pairs', 'distill_steps'):
    check_positive_int(cfg[name], f'train.{name}')
  reflow = cfg.distill_reflow_epochs
  if isinstance(reflow, bool) or not isinstance(reflow, int) or not 0 <= reflow <= cfg.epochs:
    raise InputError(f'train.distill_reflow_epochs={reflow!r}: expected an integer from 0 to '
                     f'train.epochs={cfg.epochs}')
  if cfg.distill_pairs < cfg.batch_size:
    raise InputError(f'train.distill_pairs={cfg.distill_pairs} is fewer than one batch of '
                     f'train.batch_size={cfg.batch_size}')


def student_params(teacher_params, teacher_cfg, student_cfg, student, key):
  """The student's starting weights: the teacher's own when the networks are
  alike; the teacher's input and output layers and first `depth` blocks when the
  student only has fewer blocks (each block is a residual update, so the first
  ones already map into the space the output layer reads); else `student.init`."""
  same = ('dim', 'width', 'hidden', 'time_dim', 'ffn', 'cond')
  if any(student_cfg[k] != teacher_cfg[k] for k in same) or student_cfg.depth > teacher_cfg.depth:
    return student.init(key, jnp.zeros((1, student_cfg.dim)), jnp.zeros((1,)))
  return {'params': {name: layer for name, layer in teacher_params['params'].items()
                     if not name.startswith('Block_')
                     or int(name.split('_')[1]) < student_cfg.depth}}


def _start_run(config, workdir, teacher):
  """Writes (or checks, when resuming) the student's config.json, stats.json and
  distill.json; returns (the teacher's description, the run's epochs so far or None)."""
  folder, run, _, _, meta, temperature = teacher
  epochs_before = loop.check_resume(workdir, config, _RUN_IDENTITY, 'a distilled run')
  source = {'workdir': str(folder.absolute()), 'step': meta['step'],
            'solver': run.sample.solver, 'steps': run.sample.steps,
            'network_evaluations': run.sample.steps * flow.evaluations_per_step(run.sample.solver),
            'temperature': temperature}
  distill_path = workdir / FILE
  if distill_path.exists() and files.read_json(distill_path) != source:
    raise InputError(f'{distill_path}: the run was distilled from another teacher checkpoint or '
                     f'settings ({files.read_json(distill_path)}); use another --workdir')
  workdir.mkdir(parents=True, exist_ok=True)
  files.write_json(workdir / 'config.json', json.loads(config.to_json()))
  files.write_json(workdir / 'stats.json', files.read_json(folder / 'stats.json'))
  files.write_json(distill_path, source)
  return source, epochs_before


def make_validate(config, stats, sphere, teacher_generate, teacher_params, mesh, model):
  """`validate(params, epoch, loss)` (`rfp.loop`) and `gaps_to_teacher(params,
  temperature)`: the student's and the teacher's rows from the same noise (shard 0
  of the training seed, held out as `rfp.training` validates), compared by the
  probe gaps; returns them with the teacher's gaps."""
  cfg, dim = config.train, config.model.dim
  batch = sharding.round_up(config.sample.batch_size, mesh)
  emb = data.open_embeddings(config.data.train)
  val_rows = data.split_rows(emb.n, config.data.val_fraction, config.data.val_max, cfg.seed,
                             config.data.val_block_rows)
  probes, real = training.probe_sets(config, emb, val_rows)
  n_val = min(len(val_rows), cfg.val_samples)
  probe_sizes = hardness.probe_sizes(n_val, len(real))

  def rows(generate, params):
    return generator.generate_rows(generate, params, cfg.seed, 0, n_val, dim, batch, mesh)

  def gaps(x):
    x = stats.denormalize(x)
    x = x / np.linalg.norm(x, axis=1, keepdims=True) if sphere else x
    return hardness.probe_gaps(probes, real, x, probe_sizes)

  teacher_val = rows(teacher_generate, teacher_params)
  teacher_gaps = gaps(teacher_val)
  generate = generator.make_generator(model, cfg.distill_steps, SOLVER, mesh)

  def validate(params, epoch, loss):
    x = rows(generate, params)
    student_gaps = gaps(x)
    score = float(np.mean([abs(student_gaps[n] - teacher_gaps[n]) for n in probe_sizes]))
    mse = float(np.mean((x - teacher_val)**2))
    logged_gaps = {str(n): g for n, g in student_gaps.items()}
    return loop.Validation(
        record={'phase': 'reflow' if epoch <= cfg.distill_reflow_epochs else 'distill',
                'loss': loss, 'val_pair_mse': mse, 'val_probe_gaps': logged_gaps,
                'teacher_probe_gaps': {str(n): g for n, g in teacher_gaps.items()},
                'val_teacher_gap': score},
        score=score, saved={'val_probe_gaps': logged_gaps},
        text=f'pair MSE {mse:.4f}  probe gaps '
             f'{" ".join(f"{g:+.4f}" for g in student_gaps.values())} (teacher '
             f'{" ".join(f"{g:+.4f}" for g in teacher_gaps.values())})')

  def gaps_to_teacher(params, temperature):
    generate_t = generator.make_generator(model, cfg.distill_steps, SOLVER, mesh,
                                          temperature=temperature)
    student_gaps = gaps(rows(generate_t, params))
    return {n: student_gaps[n] - teacher_gaps[n] for n in probe_sizes}

  return validate, gaps_to_teacher, teacher_gaps


def distill_and_evaluate(config, workdir, stop_after=None, progress=True):
  """Distils the run `config.train.distill_from` into a student in `workdir`
  (or resumes it); returns the final log record, as `training.train_and_evaluate`,
  with the teacher's description under 'teacher'."""
  workdir = pathlib.Path(workdir)
  _check_config(config.train)
  teacher = _teacher(config)
  _, teacher_run, teacher_params, stats, _, temperature = teacher
  config = _student_config(config, teacher_run)
  cfg, dim = config.train, config.model.dim
  model, teacher_model = model_lib.from_config(config.model), model_lib.from_config(teacher_run.model)
  loop.check_room(workdir, training.state_bytes(model, config), cfg.distill_pairs * dim * 4,
                  what='pairs and checkpoints')
  source, epochs_before = _start_run(config, workdir, teacher)

  mesh = sharding.data_mesh()
  loop.check_batch(cfg.batch_size, mesh)
  teacher_generate = generator.make_generator(teacher_model, teacher_run.sample.steps,
                                              teacher_run.sample.solver, mesh,
                                              temperature=temperature)
  z_nd, x_nd = make_pairs(workdir, teacher_generate, teacher_params, cfg.seed, cfg.distill_pairs,
                          dim, sharding.round_up(config.sample.batch_size, mesh), mesh, progress)
  steps_per_epoch = cfg.distill_pairs // cfg.batch_size
  optimizer, schedule = optimizer_lib.from_config(cfg, cfg.epochs * steps_per_epoch)
  # A copy: the step donates the state, and the teacher's buffers must survive it.
  params = jax.tree.map(jnp.copy, student_params(
      teacher_params, teacher_run.model, config.model, model,
      jax.random.fold_in(jax.random.key(cfg.seed), 4)))
  state = {'step': jnp.array(0, jnp.int32), 'params': params,
           'opt_state': optimizer.init(params)}
  step_fns = {reflow: jax.jit(
      lambda s, z, x, k, reflow=reflow: train_step(model, optimizer, s, z, x, k,
                                                   cfg.distill_steps, reflow),
      donate_argnums=0) for reflow in (False, True)}
  sphere = generator.resolve_sphere(config.sample.sphere, files.read_summary(workdir))
  validate, gaps_to_teacher, teacher_gaps = make_validate(
      config, stats, sphere, teacher_generate, teacher_params, mesh, model)

  def batches(epoch, skip):
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(cfg.distill_pairs)
    for i in range(skip, steps_per_epoch):
      rows = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
      yield sharding.put_batch(z_nd[rows], mesh), sharding.put_batch(x_nd[rows], mesh)

  def calibrate(params, step):
    return {**calibration.calibrate(lambda t: gaps_to_teacher(params, t), step, TEMPERATURES),
            'gaps_relative_to': 'teacher',
            'teacher_gaps': {str(n): g for n, g in teacher_gaps.items()}}

  task = loop.Task(name='distill', select='teacher', steps_per_epoch=steps_per_epoch,
                   batches=batches,
                   step_fn=lambda epoch: step_fns[epoch < cfg.distill_reflow_epochs],
                   validate=validate, calibrate=calibrate)
  result = loop.run(task, workdir, config, state, schedule,
                    jax.random.fold_in(jax.random.key(cfg.seed), 3), mesh,
                    epochs_before=epochs_before, stop_after=stop_after, progress=progress)
  return {**result, 'teacher': source}
