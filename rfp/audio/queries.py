"""Queries: distorted 1 s excerpts of reference tracks at off-grid offsets, fingerprinted,
with the database row each should find."""

import functools

import jax
import numpy as np

from rfp.audio import augment
from rfp.audio.embed import embed_windows, n_windows
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT

# Query distortions scored one at a time: (name, reverberate?, SNR range in dB).
# 200 dB leaves the noise ~1e-10 of the music, i.e. none.
CONDITIONS = (('offset only', False, (200.0, 200.0)), ('reverb only', True, (200.0, 200.0)),
              ('reverb + 0-3 dB noise', True, (0.0, 3.0)), ('reverb + 3-6 dB noise', True, (3.0, 6.0)),
              ('reverb + 6-10 dB noise', True, (6.0, 10.0)))


def query_starts(key, bounds, n_queries):
  """Excerpts at random off-grid offsets of the tracks in `bounds` (as
  `workdir.concat_audio` gives them): start samples, true rows, distances from
  the true row's window in seconds.

  The true row is the window nearest in time to the excerpt, at most a quarter
  second away.
  """
  rows_k = np.array([n_windows(int(b - a)) for a, b in bounds])
  first_row_k = np.concatenate([[0], np.cumsum(rows_k)[:-1]])
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  starts, truth, off_grid = [], [], []
  while len(starts) < n_queries:
    k = rng.choice(len(bounds), p=rows_k / rows_k.sum())
    offset = int(rng.integers(augment.RIR_LEN, bounds[k, 1] - bounds[k, 0] - SEGMENT))
    if offset % HOP == 0:
      continue  # On-grid excerpts would align exactly with a stored window.
    row = min(int(round(offset / HOP)), rows_k[k] - 1)
    starts.append(bounds[k, 0] + offset)
    truth.append(first_row_k[k] + row)
    off_grid.append(abs(offset - row * HOP) / SAMPLE_RATE)
  return np.array(starts), np.array(truth, np.int64), np.array(off_grid)


def make_queries(key, params, audio, bounds, noise, n_queries, query_rirs_nl,
                 snr_db_range=augment.SNR_DB_RANGE, batch=500, normalise=True):
  """Fingerprints of distorted 1 s excerpts (`query_starts`), their true rows and
  their distances from the grid in seconds.

  `audio`, `bounds` are the tracks as `workdir.concat_audio` gives them, `noise`
  the noise files concatenated and `query_rirs_nl` the rooms (for queries:
  disjoint from training's). Each excerpt is reverberated, then mixed with noise.
  """
  k_pick, k_distort = jax.random.split(key)
  starts, truth_q, off_grid_q = query_starts(k_pick, bounds, n_queries)
  distort = jax.jit(functools.partial(augment.distort, snr_db_range=snr_db_range))
  e_qd = []
  for i in range(0, n_queries, batch):
    context_bt = np.stack([audio[s - augment.RIR_LEN:s + SEGMENT] for s in starts[i:i + batch]])
    noisy_bs = distort(jax.random.fold_in(k_distort, i), context_bt, noise, query_rirs_nl)
    e_qd.append(embed_windows(params, np.asarray(noisy_bs), batch, normalise))
  return np.concatenate(e_qd), truth_q, off_grid_q
