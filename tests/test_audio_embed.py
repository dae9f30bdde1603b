"""Windows on the database grid and the database rows made from them."""

import jax
import numpy as np

from rfp.audio import embed, fingerprinter
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT
from audio_helpers import music


def test_windows_are_one_second_at_half_second_hop():
  x = np.arange(int(3.7 * SAMPLE_RATE), dtype=np.float32)
  w = embed.windows(x)
  assert w.shape == (embed.n_windows(x.size), SEGMENT) == (6, SEGMENT)
  np.testing.assert_array_equal(w[:, 0], np.arange(6) * HOP)


def test_shifted_windows_move_by_the_shift_and_stop_at_the_signal_ends():
  x = np.arange(int(3.7 * SAMPLE_RATE), dtype=np.float32)
  early, late = embed.windows(x, shift=-1000), embed.windows(x, shift=1000)
  assert early.shape == late.shape == embed.windows(x).shape
  np.testing.assert_array_equal(early[:, 0], np.maximum(np.arange(6) * HOP - 1000, 0))
  np.testing.assert_array_equal(late[:, 0], np.minimum(np.arange(6) * HOP + 1000, x.size - SEGMENT))
  np.testing.assert_array_equal(late[:, 1:] - late[:, :-1], 1.0)  # Still contiguous audio.


def test_database_rows_are_the_normalised_mean_over_shifts_of_each_tracks_own_windows():
  params = fingerprinter.init_params(jax.random.key(0))
  x = music(4.0)
  f_nsd = embed.window_fingerprints(params, [x])
  assert f_nsd.shape == (embed.n_windows(x.size), len(embed.DATABASE_SHIFTS), fingerprinter.DIM)
  for i, s in enumerate(embed.DATABASE_SHIFTS):
    np.testing.assert_array_equal(f_nsd[:, i], embed.embed_windows(params, embed.windows(x, shift=s)))
  mean_nd = f_nsd.mean(axis=1)
  np.testing.assert_allclose(embed.database_rows(f_nsd),
                             mean_nd / np.linalg.norm(mean_nd, axis=1, keepdims=True), atol=1e-5)
  # Shifted windows are other audio: a row is not its offset-0 fingerprint.
  assert np.abs(embed.database_rows(f_nsd) - f_nsd[:, embed.DATABASE_SHIFTS.index(0)]).max() > 1e-3
  pre_nsd = embed.window_fingerprints(params, [x], normalise=False)
  np.testing.assert_allclose(pre_nsd / np.linalg.norm(pre_nsd, axis=-1, keepdims=True), f_nsd, atol=1e-5)
  # Tracks embedded in one group or one by one: the same fingerprints, none from a window across both.
  y = music(3.0, seed=1)
  together = embed.window_fingerprints(params, iter([x, y]))
  apart = embed.window_fingerprints(params, [x, y], group_rows=1)
  np.testing.assert_allclose(together, apart, atol=1e-6)
  np.testing.assert_allclose(together, np.concatenate([f_nsd, embed.window_fingerprints(params, [y])]), atol=1e-6)
