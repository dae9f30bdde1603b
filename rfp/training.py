"""Training a rectified-flow model on fingerprint embeddings.

`train_step` is a pure function of (state, batch, key); `train_and_evaluate`
is the loop around it: data, checkpoints, validation, logging and resume.

Each epoch ends by sampling the validation set's size and scoring the rows
two ways: the Frechet distance to held-out rows (the paper's figure), and the
probe gaps of `rfp.evaluation.hardness` (do held-out tracks find their best
match among synthetic rows as often as among real rows of other tracks?).
The `best` checkpoint is the one with the smallest probe criterion
(`train.select='probe'`): FD rewards near-Gaussian samples, which are poor
distractors, so it would pick early, blurry epochs. A finished run ends by
calibrating the sampling temperature of that checkpoint (`rfp.calibration`).

Longer than the house's ~300 lines because the loop is one piece: resume,
validation, selection and calibration share its state and must agree on it.
"""

import json
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rfp import (calibration, checkpoint, data, files, flow, generator, metrics,
                 model as model_lib, sharding, tracks)
from rfp.errors import InputError
from rfp.evaluation import hardness

# Fields that define what a run learns: resuming with any of them changed
# would silently mix two different runs. `train.epochs` may grow (`_check_workdir`).
_RUN_IDENTITY = ('data', 'model', 'train.batch_size', 'train.seed',
                 'train.lr', 'train.lr_end', 'train.warmup_steps', 'train.select',
                 'train.time_dist', 'train.ema_decay', 'train.distill_from')
SELECT = ('probe', 'fd')


def make_optimizer(cfg, total_steps):
  """AdamW with (optional linear warm-up then) cosine decay lr -> lr_end."""
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=cfg.lr if warmup == 0 else 0.0, peak_value=cfg.lr,
      warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1), end_value=cfg.lr_end)
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                     optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2,
                                 weight_decay=cfg.weight_decay)), schedule


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


def _check_workdir(workdir, config):
  """Refuses to resume a run that was started with different settings, or
  with fewer epochs (more continue it). Returns the run's epochs so far, or
  None for a new run."""
  path = workdir / 'config.json'
  if not path.exists():
    return None
  old = files.read_json(path)
  files.check_same_settings(workdir, old, json.loads(config.to_json()), _RUN_IDENTITY,
                            'a run', '--workdir')
  epochs = old['train']['epochs']
  if config.train.epochs < epochs:
    raise InputError(f'{workdir}: holds a run of {epochs} epochs; train.epochs can grow '
                     f'(continuing it) but not shrink to {config.train.epochs}; use another '
                     '--workdir')
  return epochs


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
  optimizer, _ = make_optimizer(config.train, 1)  # The schedule does not change the shapes.
  shapes = jax.eval_shape(lambda: init_state(model, optimizer, jax.random.key(0), config.model.dim,
                                             ema=config.train.ema_decay > 0))
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def add_losses(epoch_loss, pending):
  """(sum, count) of an epoch's losses with the device scalars `pending` added.

  Summed in float64, which is exact for float32 losses, so an epoch resumed
  from a checkpoint (which stores the sum) logs the mean an uninterrupted one does.
  """
  values = np.asarray(jax.device_get(pending), np.float64)
  return epoch_loss[0] + float(values.sum()), epoch_loss[1] + len(values)


class Interrupt:
  """Turns Ctrl-C into a flag so the loop can checkpoint before stopping."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, *_):
    self.requested = True

  def __exit__(self, *_):
    signal.signal(signal.SIGINT, self._previous)


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


def truncate_log(path, step):
  """Drops log records past `step`: they belong to work lost in an interruption."""
  if not path.exists():
    return
  keep = [l for l in path.read_text().splitlines() if l and json.loads(l)['step'] <= step]
  path.write_text(''.join(l + '\n' for l in keep))


def train_and_evaluate(config, workdir, stop_after=None, progress=True):
  """Trains (or resumes, or continues for more epochs) the run in `workdir`;
  returns the final log record.

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
  # Before the data pass: room for a `latest` and a `best` checkpoint the run
  # lacks, plus one being written before the one it replaces is deleted.
  missing = sum(files.checkpoint_step(workdir, which) is None for which in ('latest', 'best'))
  files.check_output(workdir, (missing + 1) * state_bytes(model, config), what='checkpoints')
  workdir.mkdir(parents=True, exist_ok=True)
  epochs_before = _check_workdir(workdir, config)
  stats, summary, val_rows, stream = _prepare_data(config, workdir, emb, progress)
  files.write_json(workdir / 'config.json', json.loads(config.to_json()))

  mesh = sharding.data_mesh()
  if config.train.batch_size % mesh.devices.size:
    raise InputError(f'train.batch_size={config.train.batch_size} is not a multiple of the '
                     f'{mesh.devices.size} devices')
  steps_per_epoch = stream.steps_per_epoch
  total_steps = config.train.epochs * steps_per_epoch
  optimizer, schedule = make_optimizer(config.train, total_steps)
  root = jax.random.key(config.train.seed)
  state = init_state(model, optimizer, jax.random.fold_in(root, 0), config.model.dim,
                     ema=config.train.ema_decay > 0)

  latest, best = checkpoint.managers(workdir)
  restored, meta = checkpoint.restore(latest, state)
  state = sharding.put_replicated(restored if restored is not None else state, mesh)
  meta = meta or {'best_score': None, 'best_step': None}
  epoch_loss = tuple(meta.pop('epoch_loss', (0.0, 0)))  # This epoch's losses so far: (sum, count).
  step = int(state['step'])
  if epochs_before is not None and config.train.epochs > epochs_before:
    tqdm.write(f'{workdir}: continuing from {epochs_before} to {config.train.epochs} epochs; the '
               f'learning-rate schedule now ends at step {total_steps} (was '
               f'{epochs_before * steps_per_epoch}), so its rate rises again from step {step}')
  log_path = workdir / 'metrics.jsonl'
  truncate_log(log_path, step)

  step_fn = jax.jit(lambda s, x, k: train_step(model, optimizer, s, x, k, config.train.time_dist,
                                               config.train.ema_decay), donate_argnums=0)
  generate = generator.make_generator(model, config.sample.steps, config.sample.solver, mesh)
  x_val = emb.take(val_rows[:config.train.val_samples])
  val_moments = metrics.moments(x_val)
  probes, real = probe_sets(config, emb, val_rows)
  probe_sizes = hardness.probe_sizes(len(x_val), len(real))
  sphere = generator.resolve_sphere(config.sample.sphere, summary)
  step_keys = jax.random.fold_in(root, 2)

  def val_samples(params, generate_fn):
    # Shard 0 of the training seed: the same noise every epoch, so epochs compare.
    x = stats.denormalize(generator.generate_rows(generate_fn, params, config.train.seed, 0,
                                                  len(x_val), config.model.dim,
                                                  config.sample.batch_size, mesh))
    return x / np.linalg.norm(x, axis=1, keepdims=True) if sphere else x

  def validate(params):
    """(val FD, probe gaps, probe criterion) of the model's samples."""
    x = val_samples(params, generate)
    fd = metrics.frechet_distance_from_moments(*metrics.moments(x), *val_moments)
    gaps = hardness.probe_gaps(probes, real, x, probe_sizes)
    return fd, gaps, hardness.probe_criterion(gaps)

  end = total_steps if stop_after is None else min(stop_after, total_steps)
  records = [json.loads(l) for l in log_path.read_text().splitlines()] if log_path.exists() else []
  logged_step = records[-1]['step'] if records else 0
  losses, t0, steps0 = [], time.perf_counter(), step  # `losses`: device scalars not yet summed.
  bar = tqdm(total=total_steps, initial=step, desc='train', unit='step', dynamic_ncols=True,
             mininterval=0.5, disable=not progress)
  with Interrupt() as interrupt:
    while True:
      if step % steps_per_epoch == 0 and step > logged_step:
        # Validation closes each epoch; a resumed run redoes it if it was cut off.
        elapsed = time.perf_counter() - t0
        epoch = step // steps_per_epoch
        bar.set_description('validate')
        fd, gaps, probe = validate(checkpoint.sampled_params(state))
        score = fd if config.train.select == 'fd' else probe
        bar.set_description('train')
        loss_sum, loss_count = add_losses(epoch_loss, losses)
        record = {'epoch': epoch, 'step': step, 'epochs': config.train.epochs,
                  'loss': loss_sum / loss_count if loss_count else None,
                  'val_fd': fd, 'val_probe_gaps': {str(n): g for n, g in gaps.items()},
                  'val_probe': probe, 'lr': float(schedule(step)),
                  'steps_per_s': (step - steps0) / elapsed if step > steps0 else None}
        if meta['best_score'] is None or score < meta['best_score']:
          meta = {'best_score': score, 'select': config.train.select, 'best_step': step,
                  'best_epoch': epoch}
          checkpoint.save(best, state, {**meta, 'epoch': epoch, 'val_fd': fd,
                                        'val_probe_gaps': record['val_probe_gaps']})
        checkpoint.save(latest, state, {**meta, 'epoch_loss': (0.0, 0)})
        with open(log_path, 'a') as f:
          f.write(json.dumps(record) + '\n')
        records.append(record)
        logged_step = step
        loss_text = 'n/a' if record['loss'] is None else f'{record["loss"]:.4f}'
        gap_text = ' '.join(f'{g:+.4f}' for g in gaps.values())
        bar.write(f'epoch {epoch}/{config.train.epochs}  loss {loss_text}  val FD {fd:.3e}  '
                  f'probe gaps {gap_text}  best epoch {meta["best_epoch"]}')
        epoch_loss, losses, t0, steps0 = (0.0, 0), [], time.perf_counter(), step
      if step >= end:
        break
      epoch = step // steps_per_epoch
      for x_bd in stream.epoch(epoch, skip=step % steps_per_epoch):
        key = jax.random.fold_in(step_keys, step)
        state, m = step_fn(state, sharding.put_batch(x_bd, mesh), key)
        losses.append(m['loss'])
        step += 1
        bar.update(1)
        if step % config.train.log_every == 0:
          bar.set_postfix(epoch=epoch + 1, loss=f'{float(losses[-1]):.4f}',
                          rate=f'{(step - steps0) / (time.perf_counter() - t0):.1f}/s')
        if interrupt.requested or step == end or step % config.train.checkpoint_every == 0:
          epoch_loss, losses = add_losses(epoch_loss, losses), []
          checkpoint.save(latest, state, {**meta, 'epoch_loss': epoch_loss})
        if interrupt.requested:
          bar.close()
          raise KeyboardInterrupt
        if step == end:
          break
  bar.close()
  saved = calibration.read(workdir)
  if step == total_steps and (saved is None or saved['step'] != meta['best_step']):
    best_state, _ = checkpoint.restore(best, state)
    params = checkpoint.sampled_params(best_state)

    def gaps_at(temperature):
      generate_t = generator.make_generator(model, config.sample.steps, config.sample.solver,
                                            mesh, temperature=temperature)
      return hardness.probe_gaps(probes, real, val_samples(params, generate_t), probe_sizes)

    saved = calibration.calibrate(gaps_at, meta['best_step'])
    files.write_json(workdir / calibration.FILE, saved)
    if progress:
      print(f'sampling temperature {saved["temperature"]:g} (probe gaps of the best checkpoint, '
            f'{workdir / calibration.FILE})')
  if step == total_steps:  # The track generator's noise, fitted for the calibrated sampler.
    tracks.ensure_fit(generator.load_sampler(workdir, config.sample), progress=progress)
  return {'step': step, 'total_steps': total_steps, 'records': records, **meta,
          'temperature': saved and saved['temperature']}
