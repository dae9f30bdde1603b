"""Log-mel features of 1 s audio segments, computed in JAX so they run inside `jit`,
and when two windows' features say they are the same audio (a loop)."""

import functools

import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 8000
SEGMENT = SAMPLE_RATE          # 1 s windows.
HOP = SAMPLE_RATE // 2         # 0.5 s hop between database windows.
N_FFT = 512
FRAME_HOP = 80                 # 10 ms.
N_MELS = 64
F_MIN, F_MAX = 300.0, 4000.0   # Below 300 Hz game music is mostly rumble that noise masks.
N_FRAMES = 1 + (SEGMENT - N_FFT) // FRAME_HOP


def _hz_to_mel(f):
  return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m):
  return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.cache
def mel_filterbank(n_mels=N_MELS, n_fft=N_FFT, sr=SAMPLE_RATE, f_min=F_MIN, f_max=F_MAX):
  """Triangular HTK-style filters, [n_fft // 2 + 1, n_mels]."""
  edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
  bins_hz = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
  lo, mid, hi = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
  up = (bins_hz[:, None] - lo) / (mid - lo)
  down = (hi - bins_hz[:, None]) / (hi - mid)
  return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(x_bs):
  """[B, S] waveforms of 1 s -> [B, N_MELS, N_FRAMES] log-mel power.

  The log is taken relative to each segment's peak so that the features ignore
  playback gain, which a query recording never preserves.
  """
  starts = np.arange(N_FRAMES) * FRAME_HOP
  idx_fn = starts[:, None] + np.arange(N_FFT)[None, :]
  window = np.hanning(N_FFT).astype(np.float32)
  frames_bfn = x_bs[:, idx_fn] * window
  power_bfk = jnp.abs(jnp.fft.rfft(frames_bfn, axis=-1)) ** 2
  mel_bfm = power_bfk @ mel_filterbank()
  db_bfm = 10.0 * jnp.log10(mel_bfm + 1e-10)
  db_bfm = jnp.maximum(db_bfm, db_bfm.max(axis=(1, 2), keepdims=True) - 80.0)
  return jnp.swapaxes(db_bfm - db_bfm.max(axis=(1, 2), keepdims=True), 1, 2) / 80.0 + 0.5


# Two windows whose log-mels correlate above this are the same audio twice.
LOOP_CORR = 0.9


def mel_correlations(x_ns):
  """[n, n] Pearson correlations between windows' log-mel features (rows of x_ns)."""
  f_nf = x_ns.reshape(x_ns.shape[0], -1)
  f_nf = f_nf - f_nf.mean(axis=1, keepdims=True)
  f_nf = f_nf / (np.linalg.norm(f_nf, axis=1, keepdims=True) + 1e-9)
  return f_nf @ f_nf.T
