"""Data parallelism: one mesh axis over all devices, batches split along it."""

import jax
import numpy as np

from rfp import sharding


def test_batches_split_over_every_device_and_params_replicate():
  mesh = sharding.data_mesh()
  assert mesh.devices.size == len(jax.devices()) == 4
  x = sharding.put_batch(np.arange(32, dtype=np.float32).reshape(8, 4), mesh)
  assert [s.data.shape for s in x.addressable_shards] == [(2, 4)] * 4
  params = sharding.put_replicated({'w': np.ones(3)}, mesh)
  assert all(s.data.shape == (3,) for s in params['w'].addressable_shards)


def test_round_up_to_the_device_count():
  mesh = sharding.data_mesh(jax.devices()[:3])
  assert [sharding.round_up(n, mesh) for n in (1, 3, 4, 9)] == [3, 3, 6, 9]
