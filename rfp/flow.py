"""Rectified flow: the training loss and the ODE solvers that sample from it.

Convention (paper, Eq. 1-2): x_t = t*z + (1-t)*x with z ~ N(0, I); t=0 is data,
t=1 is noise; the network predicts v = z - x. Sampling integrates dx/dt = v
from t=1 down to t=0, so each step towards data *subtracts* dt*v (the paper's
Eq. 4 prints a plus sign, which only holds for a network predicting x - z).
"""

import jax
import jax.numpy as jnp

SOLVERS = ('euler', 'heun', 'midpoint')
# Training time steps: uniform (the paper) or logit-normal, which spends more
# steps mid-way, where the velocity is hardest to predict (SD3's choice).
TIME_DISTS = ('uniform', 'logit_normal')


def interpolate(x_bd, z_bd, t_b):
  return t_b[:, None] * z_bd + (1 - t_b[:, None]) * x_bd


def sample_t(key, n, time_dist='uniform'):
  if time_dist == 'logit_normal':
    return jax.nn.sigmoid(jax.random.normal(key, (n,)))
  return jax.random.uniform(key, (n,))


def loss(v_fn, x_bd, key, time_dist='uniform'):
  """Mean squared error (per element) between v_fn(x_t, t) and z - x, t ~ `time_dist`."""
  key_t, key_z = jax.random.split(key)
  t_b = sample_t(key_t, x_bd.shape[0], time_dist)
  z_bd = jax.random.normal(key_z, x_bd.shape)
  v_bd = v_fn(interpolate(x_bd, z_bd, t_b), t_b)
  return jnp.mean((v_bd - (z_bd - x_bd))**2)


def _euler(v_fn, x, t, dt):
  return x - dt * v_fn(x, t)


def _heun(v_fn, x, t, dt):
  v1 = v_fn(x, t)
  v2 = v_fn(x - dt * v1, t - dt)
  return x - 0.5 * dt * (v1 + v2)


def _midpoint(v_fn, x, t, dt):
  v1 = v_fn(x, t)
  return x - dt * v_fn(x - 0.5 * dt * v1, t - 0.5 * dt)


_STEPS = {'euler': _euler, 'heun': _heun, 'midpoint': _midpoint}


def evaluations_per_step(solver):
  return 1 if solver == 'euler' else 2


def solve(v_fn, z_bd, steps, solver='euler'):
  """Integrates from noise `z_bd` at t=1 to data at t=0 in `steps` uniform steps.

  `v_fn(x_bd, t)` receives a scalar t, so time conditioning is computed once
  per step for the whole batch.
  """
  step = _STEPS[solver]
  dt = 1.0 / steps

  def body(x, i):
    t = 1.0 - i * dt
    return step(v_fn, x, t, dt), None

  x, _ = jax.lax.scan(body, z_bd, jnp.arange(steps, dtype=jnp.float32))
  return x
