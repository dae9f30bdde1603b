"""Data parallelism: one mesh axis over every device, batches split along it.

Parameters are replicated and batches carry a `NamedSharding` on their first
axis; `jit` partitions the computation from those shardings (no `pmap`).
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

AXIS = 'data'


def data_mesh(devices=None):
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (AXIS,), devices=devices)


def batch_sharding(mesh):
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh):
  return NamedSharding(mesh, P())


def put_batch(x_bd, mesh):
  """Places a host batch on the mesh, split along rows."""
  return jax.device_put(np.asarray(x_bd), batch_sharding(mesh))


def put_replicated(tree, mesh):
  return jax.device_put(tree, replicated(mesh))


def round_up(n, mesh):
  """Smallest multiple of the device count that is >= n."""
  d = mesh.devices.size
  return -(-n // d) * d
