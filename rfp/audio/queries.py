"""Queries: distorted excerpts of reference tracks at off-grid offsets, fingerprinted,
with the database row each should find: 1 s excerpts, or multi-segment ones whose
whole span is distorted at once and then cut into windows on the database's hop."""

import functools

import jax
import numpy as np

from rfp.audio import augment
from rfp.audio.embed import embed_windows, n_windows, windows
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT

# Query distortions scored one at a time: (name, reverberate?, SNR range in dB).
# 200 dB leaves the noise ~1e-10 of the music, i.e. none.
CONDITIONS = (('offset only', False, (200.0, 200.0)), ('reverb only', True, (200.0, 200.0)),
              ('reverb + 0-3 dB noise', True, (0.0, 3.0)), ('reverb + 3-6 dB noise', True, (3.0, 6.0)),
              ('reverb + 6-10 dB noise', True, (6.0, 10.0)))


def span(segments):
  """Samples covered by `segments` windows on the database's hop."""
  return SEGMENT + (segments - 1) * HOP


def query_starts(key, bounds, n_queries, segments=1):
  """Excerpts of `segments` windows at random off-grid offsets of the tracks in
  `bounds` (as `workdir.concat_audio` gives them): start samples, true rows of
  the first window, distances from the true row's window in seconds.

  The true row is the window nearest in time to the excerpt, at most a quarter
  second away, and the track holds the `segments` - 1 rows after it.
  """
  rows_k = np.array([n_windows(int(b - a)) for a, b in bounds])
  first_row_k = np.concatenate([[0], np.cumsum(rows_k)[:-1]])
  starts_k = np.maximum(rows_k - segments + 1, 0)  # Windows a query can start at.
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  starts, truth, off_grid = [], [], []
  while len(starts) < n_queries:
    k = rng.choice(len(bounds), p=starts_k / starts_k.sum())
    offset = int(rng.integers(augment.RIR_LEN, bounds[k, 1] - bounds[k, 0] - span(segments)))
    if offset % HOP == 0:
      continue  # On-grid excerpts would align exactly with a stored window.
    row = min(int(round(offset / HOP)), rows_k[k] - segments)
    starts.append(bounds[k, 0] + offset)
    truth.append(first_row_k[k] + row)
    off_grid.append(abs(offset - row * HOP) / SAMPLE_RATE)
  return np.array(starts), np.array(truth, np.int64), np.array(off_grid)


def make_queries(key, params, audio, bounds, noise, n_queries, query_rirs_nl,
                 snr_db_range=augment.SNR_DB_RANGE, batch=500, normalise=True, segments=1):
  """Fingerprints of distorted excerpts (`query_starts`), their true rows and
  their distances from the grid in seconds: `[q, dim]`, or `[q, segments, dim]`
  for more than one segment (the true row is the first segment's).

  `audio`, `bounds` are the tracks as `workdir.concat_audio` gives them, `noise`
  the noise files concatenated and `query_rirs_nl` the rooms (for queries:
  disjoint from training's). Each excerpt is reverberated, then mixed with
  noise, over its whole span, then cut into windows.
  """
  k_pick, k_distort = jax.random.split(key)
  starts, truth_q, off_grid_q = query_starts(k_pick, bounds, n_queries, segments)
  if noise.size <= span(segments):  # A noise bank shorter than one excerpt repeats.
    noise = np.resize(noise, span(segments) + 1)
  distort = jax.jit(functools.partial(augment.distort, snr_db_range=snr_db_range,
                                      length=span(segments)))
  e_qd = []
  for i in range(0, n_queries, batch):
    context_bt = np.stack([audio[s - augment.RIR_LEN:s + span(segments)]
                           for s in starts[i:i + batch]])
    noisy_bt = np.asarray(distort(jax.random.fold_in(k_distort, i), context_bt, noise,
                                  query_rirs_nl))
    windows_ns = np.concatenate([windows(x) for x in noisy_bt])
    e_qd.append(embed_windows(params, windows_ns, batch, normalise))
  e_qd = np.concatenate(e_qd)
  if segments > 1:
    e_qd = e_qd.reshape(n_queries, segments, -1)
  return e_qd, truth_q, off_grid_q


def track_queries(key, params, audio, bounds, noise, query_rirs_nl, normalise=True):
  """`[rows of all tracks, dim]`: row i the fingerprint of a distorted window
  at database row i's place, the NAFP test protocol (query i is db row i).

  Each whole track is distorted at once (reverberated from silence, noise
  over its whole length) and windowed on the database's hop, shifted off the
  grid by a random amount of up to `augment.MAX_OFFSET` per track; the last
  window reads silence past the track's end where the shift needs it.
  """
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  out = []
  for k, (a, b) in enumerate(bounds):
    rows = n_windows(int(b - a))
    shift = int(rng.integers(1, augment.MAX_OFFSET + 1))
    length = span(rows) + shift
    x_t = np.zeros(augment.RIR_LEN + length, np.float32)
    x_t[augment.RIR_LEN:augment.RIR_LEN + min(length, b - a)] = audio[a:a + min(length, b - a)]
    bank = noise if noise.size > length else np.resize(noise, length + 1)
    noisy_t = np.asarray(augment.distort(jax.random.fold_in(key, k), x_t[None], bank,
                                         query_rirs_nl, length=length))[0]
    out.append(embed_windows(params, windows(noisy_t[shift:]), normalise=normalise))
  return np.concatenate(out)
