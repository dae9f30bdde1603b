"""Turning noise into fingerprints with a trained velocity network.

`make_generator` builds the sampler: one jit-compiled function that integrates
a batch of noise to data (a `lax.scan` over solver steps), with the batch split
across the mesh's devices by a `NamedSharding`. `make_noise` draws that noise
so that every row's value is fixed by (seed, shard, row) alone, whatever the
batch size or the number of devices and hosts.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rfp import flow, sharding

# Noise is drawn in blocks of this many rows, each from its own key, so a row's
# noise never depends on how rows are batched. Changing it changes every sample.
BLOCK_ROWS = 1024
RNG_IMPL = 'threefry2x32'  # Pinned: the default implementation is a global JAX option.


def make_generator(model, steps, solver, mesh, *, stats=None, sphere=False,
                   out_dtype=jnp.float32):
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
      x_bd = flow.solve(v_fn, z_bd, steps, solver)
    if stats is None:
      return x_bd
    x_bd = x_bd * jnp.asarray(stats.std) + jnp.asarray(stats.mean)
    if sphere:
      x_bd = x_bd / jnp.linalg.norm(x_bd, axis=-1, keepdims=True)
    return x_bd.astype(out_dtype)

  return generate


def shard_key(seed, shard):
  """The key of one shard: `fold_in(key(seed), shard)`, from the global shard id."""
  return jax.random.fold_in(jax.random.key(seed, impl=RNG_IMPL), shard)


def block_noise(seed, shard, block, dim):
  """Noise of rows `[block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS)` of a shard.

  The definition every sampler follows: `normal(fold_in(shard_key, block))`.
  """
  return jax.random.normal(jax.random.fold_in(shard_key(seed, shard), block),
                           (BLOCK_ROWS, dim), jnp.float32)


@functools.cache  # One compiled function per shape: train.py validates every epoch.
def make_noise(dim, batch_size, mesh):
  """A jitted `(seed, shard, start) -> z_bd`: noise of rows [start, start + batch).

  `start` must be a multiple of `batch_size`. Equal to the matching rows of
  `block_noise`, placed on the mesh like a sampler batch. Only whole blocks are drawn, so a batch that is not a
  multiple or divisor of `BLOCK_ROWS` draws up to one block it does not keep.
  """
  aligned = batch_size % BLOCK_ROWS == 0 or BLOCK_ROWS % batch_size == 0
  # Blocks overlapped by a batch starting anywhere on a multiple of batch_size.
  num_blocks = -(-batch_size // BLOCK_ROWS) + (0 if aligned else 1)

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def noise(seed, shard, start):
    key = shard_key(seed, shard)
    first = start // BLOCK_ROWS
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(num_blocks))
    z = jax.vmap(lambda k: jax.random.normal(k, (BLOCK_ROWS, dim), jnp.float32))(keys)
    z = z.reshape(num_blocks * BLOCK_ROWS, dim)
    return jax.lax.dynamic_slice_in_dim(z, start - first * BLOCK_ROWS, batch_size)

  return noise


def generate_rows(generate, params, seed, shard, n, dim, batch_size, mesh):
  """Rows [0, n) of shard `shard` (normalised space), as a numpy array.

  The same noise as `make_noise`, so these are the rows `sample.py` writes to
  that shard with that seed and model.
  """
  params = sharding.put_replicated(params, mesh)
  batch_size = sharding.round_up(batch_size, mesh)
  noise = make_noise(dim, batch_size, mesh)
  out = [jax.device_get(generate(params, noise(seed, shard, start)))
         for start in range(0, n, batch_size)]
  return np.concatenate(out)[:n]
