"""The noise rule: every row fixed by (seed, shard, row), whatever the batch or devices."""

import jax
import numpy as np
import pytest

from rfp import noise as noise_lib, sharding


def _reference_noise(seed, shard, start, rows, dim):
  """Rows [start, start + rows) of a shard, straight from the block definition."""
  first, last = start // noise_lib.BLOCK_ROWS, (start + rows - 1) // noise_lib.BLOCK_ROWS
  z = np.concatenate([np.asarray(noise_lib.block_noise(seed, shard, b, dim))
                      for b in range(first, last + 1)])
  offset = start - first * noise_lib.BLOCK_ROWS
  return z[offset:offset + rows]


@pytest.mark.parametrize('num_devices', [1, 4])
@pytest.mark.parametrize('batch', [256, 700, 1024, 2048, 3000])
def test_noise_is_fixed_by_seed_shard_and_row(num_devices, batch):
  mesh = sharding.data_mesh(jax.devices()[:num_devices])
  batch = sharding.round_up(batch, mesh)
  noise = noise_lib.make_noise(16, batch, mesh)
  for shard, start in [(0, 0), (3, batch), (3, 5 * batch)]:
    z = noise(np.uint32(7), np.int32(shard), np.int32(start))
    assert z.sharding.num_devices == num_devices
    np.testing.assert_array_equal(np.asarray(z), _reference_noise(7, shard, start, batch, 16))


def test_noise_differs_between_shards_and_seeds():
  a = np.asarray(noise_lib.block_noise(0, 0, 0, 16))
  assert not np.allclose(a, noise_lib.block_noise(0, 1, 0, 16))
  assert not np.allclose(a, noise_lib.block_noise(1, 0, 0, 16))
  assert not np.allclose(a, noise_lib.block_noise(0, 0, 1, 16))
