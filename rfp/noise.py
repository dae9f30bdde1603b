"""The noise the sampler integrates: every row's value fixed by (seed, shard, row) alone.

Noise is drawn in blocks of `BLOCK_ROWS` rows, block b of shard i from
`fold_in(fold_in(key(seed), i), b)`, so a row's noise never depends on the
batch size or the number of devices and hosts. i.i.d. rows
(`rfp.sampling`), validation rows (`rfp.training`), distillation pairs
(`rfp.distill`) and the track noise (`rfp.tracks`) all draw from it.
"""

import functools

import jax
import jax.numpy as jnp

from rfp import sharding

# Noise is drawn in blocks of this many rows, each from its own key, so a row's
# noise never depends on how rows are batched. Changing it changes every sample.
BLOCK_ROWS = 1024
RNG_IMPL = 'threefry2x32'  # Pinned: the default implementation is a global JAX option.


def shard_key(seed, shard):
  """The key of one shard: `fold_in(key(seed), shard)`, from the global shard id."""
  return jax.random.fold_in(jax.random.key(seed, impl=RNG_IMPL), shard)


def block_noise(seed, shard, block, dim):
  """Noise of rows `[block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS)` of a shard.

  The definition every sampler follows: `normal(fold_in(shard_key, block))`.
  """
  return jax.random.normal(jax.random.fold_in(shard_key(seed, shard), block),
                           (BLOCK_ROWS, dim), jnp.float32)


def batch_normal(batch_size, shape, salt=None):
  """`(key, start) -> [batch_size, *shape]`: normal rows [start, start + batch_size)
  where block b of `BLOCK_ROWS` rows is `normal(fold_in(key, b))` (with `salt`:
  `normal(fold_in(fold_in(key, b), salt))`, another stream beside it).

  `start` must be a multiple of `batch_size`. Only whole blocks are drawn, so a
  batch that is not a multiple or divisor of `BLOCK_ROWS` draws up to one block
  it does not keep.
  """
  aligned = batch_size % BLOCK_ROWS == 0 or BLOCK_ROWS % batch_size == 0
  # Blocks overlapped by a batch starting anywhere on a multiple of batch_size.
  num_blocks = -(-batch_size // BLOCK_ROWS) + (0 if aligned else 1)
  shape = tuple(shape)

  def draw(key, start):
    first = start // BLOCK_ROWS
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(num_blocks))
    if salt is not None:
      keys = jax.vmap(jax.random.fold_in, (0, None))(keys, salt)
    z = jax.vmap(lambda k: jax.random.normal(k, (BLOCK_ROWS,) + shape, jnp.float32))(keys)
    z = z.reshape((num_blocks * BLOCK_ROWS,) + shape)
    return jax.lax.dynamic_slice_in_dim(z, start - first * BLOCK_ROWS, batch_size)

  return draw


@functools.cache  # One compiled function per shape: train.py validates every epoch.
def make_noise(dim, batch_size, mesh):
  """A jitted `(seed, shard, start) -> z_bd`: noise of rows [start, start + batch).

  `start` must be a multiple of `batch_size`. Equal to the matching rows of
  `block_noise`, placed on the mesh like a sampler batch (`batch_normal`).
  """
  draw = batch_normal(batch_size, (dim,))

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def noise(seed, shard, start):
    return draw(shard_key(seed, shard), start)

  return noise
