"""A training run's folder: its config, normalisation stats, checkpoints, log.

    WORKDIR/config.json      the config the run was trained with
    WORKDIR/stats.json       normalisation statistics and a summary of the data
    WORKDIR/ckpt/latest/N/   orbax checkpoint of the newest step (for resuming)
    WORKDIR/ckpt/best/N/     orbax checkpoint with the lowest validation FD
    WORKDIR/metrics.jsonl    one JSON record per epoch
"""

import json
import pathlib

import jax
import ml_collections
import orbax.checkpoint as ocp

from rfp import data
from rfp.errors import InputError


def _manager(workdir, which):
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(pathlib.Path(workdir).absolute() / 'ckpt' / which,
                               options=options)


def managers(workdir):
  """(latest, best) checkpoint managers of a run."""
  return _manager(workdir, 'latest'), _manager(workdir, 'best')


def save(manager, state, meta):
  step = int(state['step'])
  if step in manager.all_steps():  # Same step, newer metadata (e.g. after validation).
    manager.delete(step)
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             meta=ocp.args.JsonSave(meta)), force=True)
  manager.wait_until_finished()


def restore(manager, abstract_state=None):
  """(state, meta) of the manager's newest checkpoint, or (None, None)."""
  step = manager.latest_step()
  if step is None:
    return None, None
  if abstract_state is None:
    # Saved shardings name the saving process's devices, which may not exist
    # here (another device count or host): restore onto a local device.
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    saved = ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / 'state')
    abstract_state = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local), saved)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored['state'], restored['meta']


def write_json(path, obj):
  """Writes JSON atomically: a reader never sees half a file."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(obj, indent=2) + '\n')
  tmp.replace(path)


def read_json(path):
  return json.loads(pathlib.Path(path).read_text())


def _run_file(workdir, name):
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise InputError(f'{workdir}: run folder not found')
  if not (workdir / name).is_file():
    raise InputError(f'{workdir}: no {name}; is this a folder written by train.py?')
  return workdir / name


def read_config(workdir):
  """The config dict a run was trained with (its config.json)."""
  return read_json(_run_file(workdir, 'config.json'))


def load_run(workdir, which='best'):
  """Everything needed to sample from a trained run.

  Returns (config, params, stats, meta) where meta holds the checkpoint's
  `step` and, for `best` checkpoints, its epoch and validation FD.
  """
  workdir = pathlib.Path(workdir)
  config = ml_collections.ConfigDict(read_config(workdir))
  stats = data.Stats.from_json(read_json(_run_file(workdir, 'stats.json')))
  manager = _manager(workdir, which)
  if manager.latest_step() is None:
    raise InputError(f'{workdir}: no {which} checkpoint in ckpt/{which}; train first')
  state, meta = restore(manager)
  return config, state['params'], stats, {**meta, 'step': int(state['step'])}


def latest_run(root='runs'):
  """The run under `root` whose newest checkpoint is most recent."""
  root = pathlib.Path(root)
  runs = [p.parent.parent for p in root.glob('*/ckpt/best')] if root.is_dir() else []
  if not runs:
    raise InputError(f'{root}: no trained runs found; train one with train.py or pass --workdir')
  return max(runs, key=lambda p: (p / 'metrics.jsonl').stat().st_mtime
             if (p / 'metrics.jsonl').exists() else 0.0)
