"""A run's checkpoints (orbax): the training state, saved and restored.

    WORKDIR/ckpt/latest/N/   the newest step (for resuming)
    WORKDIR/ckpt/best/N/     the selected model (`rfp.loop`: the smallest validation score)

The run's other files (config.json, stats.json, metrics.jsonl) are `rfp.files`.
"""

import pathlib

import jax
import ml_collections
import orbax.checkpoint as ocp

from rfp import data, files
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


def sampled_params(state):
  """The weights that are sampled: their moving average where training kept one."""
  return state.get('ema', state['params'])


def load_run(workdir, which='best'):
  """Everything needed to sample from a trained run.

  Returns (config, params, stats, meta) where meta holds the checkpoint's
  `step` and, for `best` checkpoints, its epoch and validation FD.
  """
  workdir = pathlib.Path(workdir)
  config = ml_collections.ConfigDict(files.read_config(workdir))
  stats = data.Stats.from_json(files.read_json(files.run_file(workdir, 'stats.json')))
  manager = _manager(workdir, which)
  if manager.latest_step() is None:
    raise InputError(f'{workdir}: no {which} checkpoint in ckpt/{which}; train first')
  state, meta = restore(manager)
  return config, sampled_params(state), stats, {**meta, 'step': int(state['step'])}
