"""Turning noise into fingerprints with a trained velocity network."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rfp import flow, sharding


def make_generator(model, steps, solver, mesh):
  """A jitted `(params, z_bd) -> x_bd` that integrates noise to data.

  Rows of `z_bd` are split across the mesh; the result is in the normalised
  space the model was trained in. Each row depends only on its own noise.
  """
  if solver not in flow.SOLVERS:
    raise ValueError(f'unknown solver {solver!r}; expected one of {flow.SOLVERS}')

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def generate(params, z_bd):
    v_fn = lambda x, t: model.apply(params, x, t).astype(jnp.float32)
    return flow.solve(v_fn, z_bd, steps, solver)

  return generate


def generate_rows(generate, params, key, n, dim, batch_size, mesh):
  """`n` rows from noise drawn with `key` (normalised space), as a numpy array."""
  z_nd = jax.random.normal(key, (n, dim))
  out = []
  for i in range(0, n, batch_size):
    z = z_nd[i:i + batch_size]
    rows = z.shape[0]
    padded = sharding.round_up(rows, mesh)
    z = jnp.pad(z, ((0, padded - rows), (0, 0)))
    out.append(jax.device_get(generate(params, sharding.put_batch(z, mesh)))[:rows])
  return np.concatenate(out)
