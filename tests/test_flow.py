"""The sampler against a distribution whose velocity field is known exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfp import flow

MU = np.array([0.5, -1.0, 2.0, 0.0, 0.3, -0.2, 1.0, -2.0], np.float32)
SIGMA = np.array([0.3, 0.1, 1.5, 0.7, 0.05, 1.0, 0.4, 2.0], np.float32)


def gaussian_velocity(x, t):
  """E[z - x | x_t] for data N(MU, diag(SIGMA^2)) and x_t = t z + (1 - t) x."""
  t = jnp.asarray(t)
  t = t[:, None] if t.ndim else t  # One time per row (training) or one for all.
  var_t = t**2 + (1 - t)**2 * SIGMA**2
  centred = x - (1 - t) * MU
  return (t - (1 - t) * SIGMA**2) / var_t * centred - MU


@pytest.mark.parametrize('solver,steps', [('euler', 256), ('heun', 32), ('midpoint', 32)])
def test_exact_velocity_samples_land_on_the_data(solver, steps):
  z = jax.random.normal(jax.random.key(0), (20_000, MU.size))
  x = np.asarray(jax.jit(lambda z: flow.solve(gaussian_velocity, z, steps, solver))(z))
  np.testing.assert_allclose(x.mean(0), MU, atol=0.05)
  np.testing.assert_allclose(x.std(0), SIGMA, rtol=0.05, atol=0.01)


def test_higher_order_solvers_beat_euler_at_equal_evaluations():
  z = jax.random.normal(jax.random.key(1), (4_000, MU.size))
  def std_error(solver, steps):
    x = flow.solve(gaussian_velocity, z, steps, solver)
    return float(jnp.abs(x.std(0) - SIGMA).max())
  assert std_error('heun', 4) < std_error('euler', 8)


def test_reversed_sign_does_not_recover_the_data():
  z = jax.random.normal(jax.random.key(2), (4_000, MU.size))
  x = flow.solve(lambda x, t: -gaussian_velocity(x, t), z, 64, 'euler')
  assert float(jnp.abs(x.mean(0) - MU).max()) > 0.5


def test_interpolation_endpoints_and_loss_minimiser():
  key = jax.random.key(3)
  x = jax.random.normal(key, (1_000, MU.size)) * SIGMA + MU
  z = jax.random.normal(jax.random.key(4), x.shape)
  np.testing.assert_allclose(flow.interpolate(x, z, jnp.zeros(1_000)), x)
  np.testing.assert_allclose(flow.interpolate(x, z, jnp.ones(1_000)), z)
  exact = float(flow.loss(gaussian_velocity, x, key))
  zero = float(flow.loss(lambda x, t: jnp.zeros_like(x), x, key))
  shifted = float(flow.loss(lambda x, t: gaussian_velocity(x, t) + 0.1, x, key))
  assert exact < shifted < zero


def test_evaluations_per_step():
  assert [flow.evaluations_per_step(s) for s in flow.SOLVERS] == [1, 2, 2]
