"""Training a rectified-flow model on fingerprint embeddings.

`train_step` is a pure function of (state, batch, key) and `validate` scores
an epoch's model; `train_and_evaluate` runs them in the shared loop
(`rfp.loop`: resume, checkpoints, selection, metrics.jsonl, calibration).

Each epoch ends by sampling the validation set's size and scoring the rows
two ways: the Frechet distance to held-out rows (the paper's figure), and the
probe gaps of `rfp.evaluation.hardness` (do held-out tracks find their best
match among synthetic rows as often as among real rows of other tracks?).
The `best` checkpoint is the one with the smallest probe criterion
(`train.select='probe'`): FD rewards near-Gaussian samples, which are poor
distractors, so it would pick early, blurry epochs. A finished run ends by
calibrating the sampling temperature of that checkpoint (`rfp.calibration`)
and fitting the track generator's noise to it (`rfp.tracks`).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rfp import (calibration, checkpoint, data, files, flow, generator, loop, metrics,
                 model as model_lib, optimizer as optimizer_lib, sharding, tracks)
from rfp.errors import InputError
from rfp.evaluation import hardness

# Fields that define what a run learns: resuming with any of them changed
# would silently mix two different runs. `train.epochs` may grow (`loop.check_resume`).
_RUN_IDENTITY = ('data', 'model', 'train.batch_size', 'train.seed',
                 'train.lr', 'train.lr_end', 'train.warmup_steps', 'train.select',
                 'train.time_dist', 'train.ema_decay', 'train.distill_from')
SELECT = ('probe', 'fd')


def init_state(model, optimizer, key, dim, ema=False):
  """The training state; with `ema`, also an exponential moving average of the
  weights, which is what gets sampled (`checkpoint.sampled_params`)."""
  params = model.init(key, jnp.zeros((1, dim)), jnp.zeros((1,)))
  state = {'step': jnp.array(0, jnp.int32), 'params': params,
           'opt_state': optimizer.init(params)}
  if ema:  # A copy: the step donates the state, and a buffer must not be donated twice.
    state['ema'] = jax.tree.map(jnp.copy, params)
  return state


def train_step(model, optimizer, state, x_bd, key, time_dist='uniform', ema_decay=0.0):
  """One optimiser step on the rectified-flow loss; returns (state, metrics)."""

  def loss_fn(params):
    return flow.loss(lambda x, t: model.apply(params, x, t), x_bd, key, time_dist)

  loss, grads = jax.value_and_grad(loss_fn)(state['params'])
  updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
  new_state = {'step': state['step'] + 1,
               'params': optax.apply_updates(state['params'], updates),
               'opt_state': opt_state}
  if 'ema' in state:
    new_state['ema'] = optax.incremental_update(new_state['params'], state['ema'],
                                                1.0 - ema_decay)
  return new_state, {'loss': loss, 'grad_norm': optax.global_norm(grads)}


def _with_data_dim(config, emb):
  """`config` with `model.dim` read from the training file where it is unset;
  a config that sets another dimension is refused, naming the flag to change."""
  if config.model.dim is None:
    config = config.copy_and_resolve_references()
    config.model.dim = emb.dim
  elif config.model.dim != emb.dim:
    raise InputError(f'{emb.path}: embeddings have dimension {emb.dim} but the config sets '
                     f'model.dim={config.model.dim}; pass --config.model.dim={emb.dim} (or '
                     'leave model.dim unset to read it from the data)')
  return config


def state_bytes(model, config):
  """Bytes of one saved training state, from its shapes alone (no compute)."""
  optimizer, _ = optimizer_lib.from_config(config.train, 1)  # The schedule leaves the shapes.
  shapes = jax.eval_shape(lambda: init_state(model, optimizer, jax.random.key(0), config.model.dim,
                                             ema=config.train.ema_decay > 0))
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def _prepare_data(config, workdir, emb, progress):
  """Validates the training file; stats are computed once per run."""
  stats_path = workdir / 'stats.json'
  if stats_path.exists():
    saved = files.read_json(stats_path)
    stats, summary = data.Stats.from_json(saved), saved['summary']
    if summary['rows'] != emb.n:
      raise InputError(f'{emb.path}: has {emb.n} rows but the run in {workdir} was trained '
                       f'on {summary["rows"]}; use another --workdir')
    if summary.get('checksum') not in (None, emb.checksum()):  # Runs from before checksums pass.
      raise InputError(f'{emb.path}: its rows differ from those the run in {workdir} was trained '
                       'on (re-embedded or rebuilt?); use another --workdir or delete it')
  else:
    stats, summary = data.scan(emb, config.data.norm, progress=progress)
    files.write_json(stats_path, {**stats.to_json(), 'summary': summary,
                                       'norm': config.data.norm})
  val_rows = data.split_rows(emb.n, config.data.val_fraction, config.data.val_max,
                             config.train.seed, config.data.val_block_rows)
  stream = data.TrainStream(emb, stats, val_rows, config.train.batch_size, config.train.seed,
                            in_memory_max_gb=config.data.in_memory_max_gb,
                            buffer_rows=config.data.shuffle_buffer_rows)
  return stats, summary, val_rows, stream


def probe_sets(config, emb, val_rows):
  """(probes, real rows of other tracks) for `hardness.probe_gaps`, fixed per run.

  Probes come from the heart of the held-out blocks, a quarter block from any
  training row, so the model has not heard their tracks; real rows lie
  `data.val_guard_rows` from every held-out row. Small files, where neither
  exists, fall back to all held-out rows and all training rows.
  """
  rng = np.random.default_rng([config.train.seed, 0x9b0e])
  pool = data.interior_rows(val_rows, emb.n, config.data.val_block_rows // 4)
  pool = pool if len(pool) else val_rows
  probes = emb.take(np.sort(rng.choice(pool, min(config.train.probe_rows, len(pool)),
                                       replace=False)))
  far = data.rows_far_from(val_rows, emb.n, config.train.val_samples,
                           config.data.val_guard_rows, rng)
  if len(far) < config.train.val_samples // 10:
    far = data.rows_far_from(val_rows, emb.n, config.train.val_samples, 0, rng)
  real = emb.take(far)
  return probes, real


def make_validate(config, emb, val_rows, stats, summary, mesh, model):
  """`validate(params, epoch, loss)` (`rfp.loop`) and `gaps_at(params, temperature)`
  (the probe gaps calibration reads): both sample the validation rows, shard 0 of
  the training seed, the same noise every epoch so that epochs compare."""
  x_val = emb.take(val_rows[:config.train.val_samples])
  val_moments = metrics.moments(x_val)
  probes, real = probe_sets(config, emb, val_rows)
  probe_sizes = hardness.probe_sizes(len(x_val), len(real))
  sphere = generator.resolve_sphere(config.sample.sphere, summary)

  def samples(params, generate):
    x = stats.denormalize(generator.generate_rows(generate, params, config.train.seed, 0,
                                                  len(x_val), config.model.dim,
                                                  config.sample.batch_size, mesh))
    return x / np.linalg.norm(x, axis=1, keepdims=True) if sphere else x

  def gaps_at(params, temperature):
    generate = generator.make_generator(model, config.sample.steps, config.sample.solver, mesh,
                                        temperature=temperature)
    return hardness.probe_gaps(probes, real, samples(params, generate), probe_sizes)

  generate = generator.make_generator(model, config.sample.steps, config.sample.solver, mesh)

  def validate(params, epoch, loss):
    del epoch  # Every epoch is validated alike.
    x = samples(params, generate)
    fd = metrics.frechet_distance_from_moments(*metrics.moments(x), *val_moments)
    gaps = hardness.probe_gaps(probes, real, x, probe_sizes)
    probe = hardness.probe_criterion(gaps)
    logged_gaps = {str(n): g for n, g in gaps.items()}
    return loop.Validation(
        record={'loss': loss, 'val_fd': fd, 'val_probe_gaps': logged_gaps, 'val_probe': probe},
        score=fd if config.train.select == 'fd' else probe,
        saved={'val_fd': fd, 'val_probe_gaps': logged_gaps},
        text=f'val FD {fd:.3e}  probe gaps {" ".join(f"{g:+.4f}" for g in gaps.values())}')

  return validate, gaps_at


def train_and_evaluate(config, workdir, stop_after=None, progress=True):
  """Trains (or resumes, or continues for more epochs) the run in `workdir`;
  returns the final log record: {'step', 'total_steps', 'records' (metrics.jsonl),
  'best_score', 'select', 'best_step', 'best_epoch', 'temperature'}.

  `stop_after` ends the run early at that global step, with a checkpoint; the
  same call without it resumes where it stopped. `model.dim` None: the
  training file's dimension (written to config.json).
  """
  workdir = pathlib.Path(workdir)
  emb = data.open_embeddings(config.data.train)
  config = _with_data_dim(config, emb)
  if config.train.select not in SELECT:
    raise InputError(f'train.select={config.train.select!r}: expected one of {", ".join(SELECT)}')
  if config.train.time_dist not in flow.TIME_DISTS:
    raise InputError(f'train.time_dist={config.train.time_dist!r}: expected one of '
                     f'{", ".join(flow.TIME_DISTS)}')
  model = model_lib.from_config(config.model)
  loop.check_room(workdir, state_bytes(model, config))
  workdir.mkdir(parents=True, exist_ok=True)
  epochs_before = loop.check_resume(workdir, config, _RUN_IDENTITY, 'a run')
  stats, summary, val_rows, stream = _prepare_data(config, workdir, emb, progress)
  files.write_json(workdir / 'config.json', json.loads(config.to_json()))

  mesh = sharding.data_mesh()
  loop.check_batch(config.train.batch_size, mesh)
  optimizer, schedule = optimizer_lib.from_config(
      config.train, config.train.epochs * stream.steps_per_epoch)
  root = jax.random.key(config.train.seed)
  state = init_state(model, optimizer, jax.random.fold_in(root, 0), config.model.dim,
                     ema=config.train.ema_decay > 0)
  step_fn = jax.jit(lambda s, x, k: train_step(model, optimizer, s, x, k, config.train.time_dist,
                                               config.train.ema_decay), donate_argnums=0)
  validate, gaps_at = make_validate(config, emb, val_rows, stats, summary, mesh, model)

  def fit_tracks(state, best_params, meta):
    """The track generator's noise, fitted for the sampler the run's config names."""
    if config.sample.checkpoint == 'best':
      params, step = best_params, meta['best_step']
    else:
      params, step = checkpoint.sampled_params(state), int(state['step'])
    tracks.ensure_fit(generator.make_sampler(workdir, config, params, stats, {'step': step},
                                             config.sample), progress=progress)

  task = loop.Task(
      name='train', select=config.train.select, steps_per_epoch=stream.steps_per_epoch,
      batches=lambda epoch, skip: ((sharding.put_batch(x_bd, mesh),)
                                   for x_bd in stream.epoch(epoch, skip=skip)),
      step_fn=lambda epoch: step_fn, validate=validate,
      calibrate=lambda params, step: calibration.calibrate(
          lambda t: gaps_at(params, t), step),
      finish=fit_tracks)
  return loop.run(task, workdir, config, state, schedule, jax.random.fold_in(root, 2), mesh,
                  epochs_before=epochs_before, stop_after=stop_after, progress=progress)
