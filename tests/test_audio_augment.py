"""Query distortions: rooms, noise at a set SNR, offsets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfp.audio import augment
from rfp.audio.features import SAMPLE_RATE, SEGMENT
from audio_helpers import music


def test_rirs_are_deterministic_unit_norm_with_the_asked_direct_to_reverberant_ratio():
  rirs = augment.room_impulse_responses(jax.random.key(0), 8, drr_db_range=(6.0, 6.0))
  assert rirs.shape == (8, augment.RIR_LEN)
  np.testing.assert_allclose(jnp.linalg.norm(rirs, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(rirs, augment.room_impulse_responses(jax.random.key(0), 8, drr_db_range=(6.0, 6.0)))
  assert not np.allclose(rirs, augment.room_impulse_responses(jax.random.key(1), 8, drr_db_range=(6.0, 6.0)))
  drr_db = 10 * np.log10(rirs[:, 0] ** 2 / jnp.sum(rirs[:, 1:] ** 2, axis=1))
  np.testing.assert_allclose(drr_db, 6.0, atol=1e-3)


def test_reverberate_is_causal_convolution():
  x_bt = jnp.asarray(music(0.5)[None])
  delay = jnp.zeros((1, 64)).at[0, 10].set(1.0)
  np.testing.assert_allclose(augment.reverberate(x_bt, delay)[0, 10:], x_bt[0, :-10], atol=1e-5)
  np.testing.assert_allclose(augment.reverberate(x_bt, delay)[0, :10], 0.0, atol=1e-5)


@pytest.mark.parametrize('snr_db', [0.0, 3.0, 10.0])
def test_mix_at_snr_gives_the_asked_snr(snr_db):
  x_bt = jnp.asarray(np.stack([music(1.0, 0), 0.01 * music(1.0, 1)]))
  noise_bt = jax.random.normal(jax.random.key(0), x_bt.shape) * jnp.array([[3.0], [0.2]])
  y_bt = augment.mix_at_snr(x_bt, noise_bt, jnp.full((2,), snr_db))
  measured = 10 * np.log10(jnp.mean(x_bt**2, axis=1) / jnp.mean((y_bt - x_bt) ** 2, axis=1))
  np.testing.assert_allclose(measured, snr_db, atol=1e-3)


def test_distort_keeps_length_is_deterministic_and_hits_the_snr():
  x_bt = jnp.asarray(np.stack([music(1.5, s) for s in range(3)]))
  noise = jax.random.normal(jax.random.key(5), (3 * SAMPLE_RATE,))
  rirs = augment.room_impulse_responses(jax.random.key(0), 4)
  y = augment.distort(jax.random.key(1), x_bt, noise, rirs, snr_db_range=(5.0, 5.0))
  assert y.shape == (3, SEGMENT)
  np.testing.assert_array_equal(y, augment.distort(jax.random.key(1), x_bt, noise, rirs, snr_db_range=(5.0, 5.0)))
  assert not np.allclose(y, augment.distort(jax.random.key(2), x_bt, noise, rirs, snr_db_range=(5.0, 5.0)))
  # With a single dry room the clean part is known exactly, so the added noise can be measured.
  dry = jnp.zeros((1, augment.RIR_LEN)).at[0, 0].set(1.0)
  y_dry = augment.distort(jax.random.key(1), x_bt, noise, dry, snr_db_range=(5.0, 5.0))
  clean = x_bt[:, -SEGMENT:]
  snr = 10 * np.log10(jnp.mean(clean**2, axis=1) / jnp.mean((y_dry - clean) ** 2, axis=1))
  np.testing.assert_allclose(snr, 5.0, atol=1e-3)
