"""Fingerprints of audio: the 1 s windows of the database grid, embedded in fixed-shape
batches, and the database rows made from each window's fingerprints at a few offsets."""

import numpy as np

from rfp.audio import fingerprinter
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT
from rfp.audio.workdir import track_audio

# A database row is the mean of its window's fingerprints at these offsets
# (samples): every eighth of a second out to the quarter second a query can land
# off the grid, so a midway excerpt finds its own audio in its row. Against R
# (run F of docs/fingerprinter.md, whitened for three offsets): 0 and ±0.125 s 71.5%, these five
# 72.2%, nine (every sixteenth) 72.4%; on the G validation slice 53.7% -> 54.7%.
DATABASE_SHIFTS = (-SAMPLE_RATE // 4, -SAMPLE_RATE // 8, 0, SAMPLE_RATE // 8, SAMPLE_RATE // 4)


def n_windows(n_samples):
  return 0 if n_samples < SEGMENT else 1 + (n_samples - SEGMENT) // HOP


def windows(x, hop=HOP, shift=0):
  """[n_windows(x.size), SEGMENT] read-only view of 1 s windows at `hop`, each
  starting `shift` samples later (earlier if negative); windows that would leave
  the signal stop at its ends instead."""
  n = n_windows(x.size)
  if shift == 0:
    return np.lib.stride_tricks.as_strided(x, (n, SEGMENT), (x.strides[0] * hop, x.strides[0]),
                                           writeable=False)
  starts = np.clip(np.arange(n) * hop + shift, 0, x.size - SEGMENT)
  return x[starts[:, None] + np.arange(SEGMENT)]


def embed_windows(params, x_ns, batch=512, normalise=True):
  """Fingerprints of many 1 s windows; a fixed batch shape keeps one compiled program."""
  out = []
  for i in range(0, x_ns.shape[0], batch):
    chunk = np.asarray(x_ns[i:i + batch], np.float32)
    padded = np.zeros((batch, SEGMENT), np.float32)
    padded[:chunk.shape[0]] = chunk
    out.append(np.asarray(fingerprinter.embed_audio(params, padded, normalise))[:chunk.shape[0]])
  return np.concatenate(out) if out else np.zeros((0, fingerprinter.DIM), np.float32)


def _groups(signals, group_rows):
  """`signals` in lists of at least `group_rows` windows (the last one may hold fewer)."""
  group, rows = [], 0
  for x in signals:
    group.append(x)
    rows += n_windows(x.size)
    if rows >= group_rows:
      yield group
      group, rows = [], 0
  if group:
    yield group


def window_fingerprints(params, signals, shifts=DATABASE_SHIFTS, normalise=True, group_rows=8192):
  """[windows of all `signals`, len(shifts), DIM]: each window's fingerprints at `shifts`.

  Signals are embedded in groups of about `group_rows` windows, so short tracks
  share batches rather than each padding its own last one; `signals` may be a
  generator, and only one group's audio is held at a time.
  """
  out = [np.stack([embed_windows(params, np.concatenate([windows(x, shift=s) for x in group]),
                                 normalise=normalise) for s in shifts], axis=1)
         for group in _groups(signals, group_rows)]
  return np.concatenate(out) if out else np.zeros((0, len(shifts), fingerprinter.DIM), np.float32)


def database_rows(f_nsd):
  """[n, DIM] unit database rows: each window's `window_fingerprints`, averaged."""
  e_nd = f_nsd.sum(axis=1)
  return e_nd / np.maximum(np.linalg.norm(e_nd, axis=1, keepdims=True), 1e-12)


def embed_tracks(work, params, entries):
  """`window_fingerprints` of every track's windows, and each window's track index."""
  windows_k = []

  def tracks():
    for e in entries:
      x = track_audio(work, e)
      windows_k.append(n_windows(x.size))
      yield x

  f_nsd = window_fingerprints(params, tracks())
  return f_nsd, np.repeat(np.arange(len(entries), dtype=np.int32), windows_k)
