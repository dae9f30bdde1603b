"""A trained run as a sampler: its network integrating noise to rows.

`make_generator` builds one jit-compiled function that integrates a batch of
noise to data (a `lax.scan` over solver steps), the batch split across the
mesh's devices by a `NamedSharding`; `generate_rows` runs it over a shard's
noise (`rfp.noise`). A `Sampler` is a run loaded once for sampling (its
checkpoint, statistics and the settings it samples with), handed to whatever
samples from it: the shard writer (`rfp.sampling`) and the track fit
(`rfp.tracks`).
"""

import dataclasses
import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rfp import (calibration, checkpoint, data, files, flow, model as model_lib, noise as noise_lib,
                 sharding)

MATMUL_DTYPES = ('float32', 'bfloat16')


def make_generator(model, steps, solver, mesh, *, stats=None, sphere=False,
                   out_dtype=jnp.float32, temperature=1.0):
  """A jitted `(params, z_bd) -> x_bd` that integrates noise to data.

  Rows of `z_bd` are split across the mesh; each row depends only on its own
  noise. Without `stats` the result is in the normalised space the model was
  trained in. With `stats` it is de-normalised to the embedding space, then
  (if `sphere`) projected onto the unit sphere, and cast to `out_dtype` on the
  device, so only the final bytes travel to the host.

  float32 matmuls run at full float32 precision on every backend (GPUs would
  otherwise use TF32), so float32 samples are reproducible across machines;
  for speed, sample with a bfloat16 model (`model.dtype`).
  """
  if solver not in flow.SOLVERS:
    raise ValueError(f'unknown solver {solver!r}; expected one of {flow.SOLVERS}')
  precision = 'highest' if jnp.dtype(model.dtype) == jnp.float32 else 'default'

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def generate(params, z_bd):
    with jax.default_matmul_precision(precision):
      v_fn = lambda x, t: model.apply(params, x, t).astype(jnp.float32)
      # The noise's scale (`rfp.calibration`); at 1 the product is exact.
      x_bd = flow.solve(v_fn, temperature * z_bd, steps, solver)
    if stats is None:
      return x_bd
    x_bd = x_bd * jnp.asarray(stats.std) + jnp.asarray(stats.mean)
    if sphere:
      x_bd = x_bd / jnp.linalg.norm(x_bd, axis=-1, keepdims=True)
    return x_bd.astype(out_dtype)

  return generate


def generate_rows(generate, params, seed, shard, n, dim, batch_size, mesh):
  """Rows [0, n) of shard `shard` (normalised space), as a numpy array.

  The same noise as `make_noise`, so these are the rows `sample.py` writes to
  that shard with that seed and model.
  """
  params = sharding.put_replicated(params, mesh)
  batch_size = sharding.round_up(batch_size, mesh)
  noise = noise_lib.make_noise(dim, batch_size, mesh)
  out = [jax.device_get(generate(params, noise(seed, shard, start)))
         for start in range(0, n, batch_size)]
  return np.concatenate(out)[:n]


def resolve_sphere(sphere, summary):
  """`sample.sphere`, where None (the default) means: project onto the unit
  sphere when every training row was unit-norm (`summary`, from stats.json).
  The best distractor of a query is a maximum over many rows, so a sampler
  whose rows are a little too long makes them far too hard."""
  return data.is_unit_norm(summary) if sphere is None else bool(sphere)


@dataclasses.dataclass(frozen=True)
class Sampler:
  """A run's network and the settings it samples with, loaded once and passed on.

  `model_cfg` is the run's model in the matmul dtype it samples with; `meta`
  holds the checkpoint's `step` (and, for `best`, its epoch and validation FD).
  """
  workdir: pathlib.Path
  run_config: ml_collections.ConfigDict
  model_cfg: ml_collections.ConfigDict
  params: Any
  stats: data.Stats
  meta: dict
  checkpoint: str
  solver: str
  steps: int
  temperature: float
  sphere: bool

  @property
  def settings(self):
    """What fixes the sampler's rows beside the noise (the track fit is keyed on it)."""
    return {'checkpoint': self.checkpoint, 'step': self.meta['step'],
            'temperature': self.temperature, 'solver': self.solver, 'steps': self.steps,
            'sphere': self.sphere, 'matmul_dtype': self.model_cfg.dtype}

  def generator(self, mesh, **kwargs):
    """`make_generator` of this sampler, into the embedding space."""
    return make_generator(model_lib.from_config(self.model_cfg), self.steps, self.solver, mesh,
                          stats=self.stats, sphere=self.sphere, temperature=self.temperature,
                          **kwargs)


def make_sampler(workdir, run_config, params, stats, meta, sample_cfg):
  """The `Sampler` of a run's weights already in hand, with the settings of
  `sample_cfg` (a `sample` config section)."""
  workdir = pathlib.Path(workdir)
  model_cfg = run_config.model.copy_and_resolve_references()
  model_cfg.dtype = sample_cfg.matmul_dtype or model_cfg.dtype
  return Sampler(workdir=workdir, run_config=run_config, model_cfg=model_cfg, params=params,
                 stats=stats, meta=meta, checkpoint=sample_cfg.checkpoint,
                 solver=sample_cfg.solver, steps=int(sample_cfg.steps),
                 temperature=calibration.temperature(sample_cfg, workdir, meta['step']),
                 sphere=resolve_sphere(sample_cfg.sphere, files.read_summary(workdir)))


def load_sampler(workdir, sample_cfg):
  """The `Sampler` of a trained run's `sample_cfg.checkpoint` (one checkpoint restore)."""
  return make_sampler(workdir, *checkpoint.load_run(workdir, sample_cfg.checkpoint), sample_cfg)
