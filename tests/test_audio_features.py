"""Log-mel features and the loop test on them."""

import jax.numpy as jnp
import numpy as np

from rfp.audio.features import LOOP_CORR, N_FRAMES, N_MELS, log_mel, mel_correlations
from audio_helpers import music


def test_log_mel_shape_and_gain_invariance():
  x_bs = jnp.asarray(np.stack([music(1.0, 0), music(1.0, 1)]))
  mel = log_mel(x_bs)
  assert mel.shape == (2, N_MELS, N_FRAMES)
  np.testing.assert_allclose(log_mel(0.05 * x_bs), mel, atol=1e-3)
  assert float(jnp.abs(mel[0] - mel[1]).mean()) > 0.05  # Different audio, different features.


def test_a_repeated_window_correlates_above_the_loop_threshold_and_other_audio_below():
  x_bs = jnp.asarray(np.stack([music(1.0, 0), music(1.0, 1), 0.5 * music(1.0, 0)]))
  corr_nn = mel_correlations(np.asarray(log_mel(x_bs)))
  assert corr_nn.shape == (3, 3)
  assert corr_nn[0, 2] > 0.999 and corr_nn[0, 1] < LOOP_CORR  # A quieter repeat is still a repeat.
