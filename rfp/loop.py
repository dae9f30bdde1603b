"""The training loop that training (`rfp.training`) and distillation (`rfp.distill`) share.

Each brings a step function and a validation function; the loop owns what
they have in common and must agree on:

  resume       from ckpt/latest, redoing an epoch's validation that was cut off;
               metrics.jsonl records past the checkpoint are dropped
  epochs       `train.epochs` may grow (the run continues) but never shrink
  validation   closes every epoch: one metrics.jsonl record, and `best` is the
               checkpoint of the smallest validation score so far
  checkpoints  ckpt/latest every `train.checkpoint_every` steps, at the end and on
               Ctrl-C, with the epoch's loss so far (a resumed epoch logs the mean
               an uninterrupted one does)
  calibration  once the run is finished: the sampling temperature of `best`
               (`rfp.calibration`), restored once for it and whatever follows

    WORKDIR/metrics.jsonl    one JSON record per epoch (`files.read_metrics`)
"""

import dataclasses
import json
import signal
import time
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm

from rfp import calibration, checkpoint, files, sharding
from rfp.errors import InputError


@dataclasses.dataclass(frozen=True)
class Validation:
  """One epoch's validation: its metrics.jsonl fields (with the epoch's `loss`,
  in the order they are logged), the score that selects `best` (smaller is
  better), what the `best` checkpoint keeps of it, and its progress line."""
  record: dict
  score: float
  saved: dict
  text: str


@dataclasses.dataclass(frozen=True)
class Task:
  """What a loop runs: the parts training and distillation do their own way.

  `batches(epoch, skip)` yields each step's batch (a tuple of arrays) of an
  epoch from step `skip` on; `step_fn(epoch)` is the jitted
  `(state, *batch, key) -> (state, metrics)` of that epoch (it donates the
  state); `validate(params, epoch, loss) -> Validation`; `calibrate(params,
  step)` is the calibration.json of the best checkpoint's sampled weights, and
  `finish(state, best_params, meta)` runs once a run is complete.
  """
  name: str
  select: str
  steps_per_epoch: int
  batches: Callable
  step_fn: Callable
  validate: Callable
  calibrate: Callable
  finish: Callable = lambda state, best_params, meta: None


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


def check_resume(workdir, config, identity, holds):
  """Refuses to resume a run started with other settings (`identity`, dotted
  config keys) or with more epochs (fewer continue it). Returns the run's
  epochs so far, or None for a new run."""
  path = workdir / 'config.json'
  if not path.exists():
    return None
  old = files.read_json(path)
  files.check_same_settings(workdir, old, json.loads(config.to_json()), identity, holds,
                            '--workdir')
  epochs = old['train']['epochs']
  if config.train.epochs < epochs:
    raise InputError(f'{workdir}: holds a run of {epochs} epochs; train.epochs can grow '
                     f'(continuing it) but not shrink to {config.train.epochs}; use another '
                     '--workdir')
  return epochs


def check_room(workdir, state_bytes, extra_bytes=0, what='checkpoints'):
  """Before any work: room for a `latest` and a `best` checkpoint the run lacks,
  plus one being written before the one it replaces is deleted."""
  missing = sum(files.checkpoint_step(workdir, which) is None for which in ('latest', 'best'))
  files.check_output(workdir, extra_bytes + (missing + 1) * state_bytes, what=what)


def check_batch(batch_size, mesh):
  if batch_size % mesh.devices.size:
    raise InputError(f'train.batch_size={batch_size} is not a multiple of the '
                     f'{mesh.devices.size} devices')


def add_losses(epoch_loss, pending):
  """(sum, count) of an epoch's losses with the device scalars `pending` added.

  Summed in float64, which is exact for float32 losses, so an epoch resumed
  from a checkpoint (which stores the sum) logs the mean an uninterrupted one does.
  """
  values = np.asarray(jax.device_get(pending), np.float64)
  return epoch_loss[0] + float(values.sum()), epoch_loss[1] + len(values)


def run(task, workdir, config, state, schedule, step_keys, mesh, epochs_before=None,
        stop_after=None, progress=True):
  """Trains `state` (a fresh one; ckpt/latest replaces it when there is one) for
  `config.train.epochs` epochs of `task`, or to step `stop_after`; returns the
  final log record, as `training.train_and_evaluate` documents it.

  `schedule` gives each step's learning rate, `step_keys` the key each step
  folds its number into; `epochs_before` is `check_resume`'s answer.
  """
  cfg = config.train
  steps_per_epoch = task.steps_per_epoch
  total_steps = cfg.epochs * steps_per_epoch
  latest, best = checkpoint.managers(workdir)
  restored, meta = checkpoint.restore(latest, state)
  state = sharding.put_replicated(restored if restored is not None else state, mesh)
  meta = meta or {'best_score': None, 'best_step': None}
  epoch_loss = tuple(meta.pop('epoch_loss', (0.0, 0)))  # This epoch's losses so far: (sum, count).
  step = int(state['step'])
  if epochs_before is not None and cfg.epochs > epochs_before:
    tqdm.write(f'{workdir}: continuing from {epochs_before} to {cfg.epochs} epochs; the '
               f'learning-rate schedule now ends at step {total_steps} (was '
               f'{epochs_before * steps_per_epoch}), so its rate rises again from step {step}')
  records = files.truncate_metrics(workdir, step)
  logged_step = records[-1]['step'] if records else 0

  end = total_steps if stop_after is None else min(stop_after, total_steps)
  losses, t0, steps0 = [], time.perf_counter(), step  # `losses`: device scalars not yet summed.
  bar = tqdm(total=total_steps, initial=step, desc=task.name, unit='step', dynamic_ncols=True,
             mininterval=0.5, disable=not progress)
  with Interrupt() as interrupt:
    while True:
      if step % steps_per_epoch == 0 and step > logged_step:
        # Validation closes each epoch; a resumed run redoes it if it was cut off.
        elapsed = time.perf_counter() - t0
        epoch = step // steps_per_epoch
        bar.set_description('validate')
        loss_sum, loss_count = add_losses(epoch_loss, losses)
        v = task.validate(checkpoint.sampled_params(state), epoch,
                          loss_sum / loss_count if loss_count else None)
        bar.set_description(task.name)
        record = {'epoch': epoch, 'step': step, 'epochs': cfg.epochs, **v.record,
                  'lr': float(schedule(step)),
                  'steps_per_s': (step - steps0) / elapsed if step > steps0 else None}
        if meta['best_score'] is None or v.score < meta['best_score']:
          meta = {'best_score': v.score, 'select': task.select, 'best_step': step,
                  'best_epoch': epoch}
          checkpoint.save(best, state, {**meta, 'epoch': epoch, **v.saved})
        checkpoint.save(latest, state, {**meta, 'epoch_loss': (0.0, 0)})
        files.append_metrics(workdir, record)
        records.append(record)
        logged_step = step
        loss_text = 'n/a' if record['loss'] is None else f'{record["loss"]:.4f}'
        bar.write(f'epoch {epoch}/{cfg.epochs}  loss {loss_text}  {v.text}  '
                  f'best epoch {meta["best_epoch"]}')
        epoch_loss, losses, t0, steps0 = (0.0, 0), [], time.perf_counter(), step
      if step >= end:
        break
      epoch = step // steps_per_epoch
      step_fn = task.step_fn(epoch)
      for batch in task.batches(epoch, step % steps_per_epoch):
        state, m = step_fn(state, *batch, jax.random.fold_in(step_keys, step))
        losses.append(m['loss'])
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0:
          bar.set_postfix(epoch=epoch + 1, loss=f'{float(losses[-1]):.4f}',
                          rate=f'{(step - steps0) / (time.perf_counter() - t0):.1f}/s')
        if interrupt.requested or step == end or step % cfg.checkpoint_every == 0:
          epoch_loss, losses = add_losses(epoch_loss, losses), []
          checkpoint.save(latest, state, {**meta, 'epoch_loss': epoch_loss})
        if interrupt.requested:
          bar.close()
          raise KeyboardInterrupt
        if step == end:
          break
  bar.close()
  saved = calibration.read(workdir)
  if step == total_steps:
    best_state, _ = checkpoint.restore(best, state)
    best_params = checkpoint.sampled_params(best_state)
    if saved is None or saved['step'] != meta['best_step']:
      saved = task.calibrate(best_params, meta['best_step'])
      files.write_json(workdir / calibration.FILE, saved)
      if progress:
        print(f'sampling temperature {saved["temperature"]:g} (best checkpoint, '
              f'{workdir / calibration.FILE})')
    task.finish(state, best_params, meta)
  return {'step': step, 'total_steps': total_steps, 'records': records, **meta,
          'temperature': saved and saved['temperature']}
