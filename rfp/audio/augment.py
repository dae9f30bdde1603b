"""Query distortions: random time offset, background noise at a set SNR, simulated rooms.

Everything takes explicit PRNG keys, so a distortion is reproducible from its key;
training and query distortions come from disjoint noise files and RIR seeds.
"""

import jax
import jax.numpy as jnp

from rfp.audio.features import SAMPLE_RATE, SEGMENT

RIR_LEN = SAMPLE_RATE // 2       # 0.5 s of tail; also the audio context a reverb needs.
MAX_OFFSET = SAMPLE_RATE // 4    # ±0.25 s: half the database hop, the worst misalignment.
RT60_RANGE = (0.2, 0.7)          # Seconds: small office to living room.
DRR_DB_RANGE = (0.0, 10.0)       # Direct-to-reverberant energy ratio.
SNR_DB_RANGE = (0.0, 10.0)


def room_impulse_responses(key, n, length=RIR_LEN, rt60_range=RT60_RANGE, drr_db_range=DRR_DB_RANGE):
  """[n, length] synthetic RIRs: a direct path plus exponentially decaying noise.

  Real rooms are not packaged; a decaying Gaussian tail has the diffuse-field
  statistics that matter to a fingerprint (smearing over time and frequency).
  """
  k_noise, k_rt60, k_drr = jax.random.split(key, 3)
  t_l = jnp.arange(length) / SAMPLE_RATE
  rt60_n = jax.random.uniform(k_rt60, (n, 1), minval=rt60_range[0], maxval=rt60_range[1])
  tail_nl = jax.random.normal(k_noise, (n, length)) * jnp.exp(-6.908 * t_l / rt60_n)  # -60 dB at RT60.
  tail_nl = tail_nl.at[:, 0].set(0.0)
  drr_db_n = jax.random.uniform(k_drr, (n, 1), minval=drr_db_range[0], maxval=drr_db_range[1])
  tail_energy_n = jnp.sum(tail_nl**2, axis=1, keepdims=True)
  tail_nl = tail_nl * jnp.sqrt(10.0 ** (-drr_db_n / 10.0) / tail_energy_n)
  rir_nl = tail_nl.at[:, 0].set(1.0)
  return rir_nl / jnp.linalg.norm(rir_nl, axis=1, keepdims=True)


def reverberate(x_bt, rir_bl):
  """Causal convolution of each row with its RIR, truncated to the input length.

  Callers pass RIR_LEN samples of context before the segment they keep, so the
  kept part carries the tail of the audio that preceded it, as in a real room.
  """
  n = x_bt.shape[1] + rir_bl.shape[1]
  y_bt = jnp.fft.irfft(jnp.fft.rfft(x_bt, n) * jnp.fft.rfft(rir_bl, n), n)
  return y_bt[:, :x_bt.shape[1]]


def mix_at_snr(x_bt, noise_bt, snr_db_b):
  """Adds noise scaled so that power(x) / power(noise) is `snr_db_b` dB per row."""
  px_b = jnp.mean(x_bt**2, axis=1)
  pn_b = jnp.mean(noise_bt**2, axis=1) + 1e-12
  gain_b = jnp.sqrt(px_b / (pn_b * 10.0 ** (snr_db_b / 10.0)))
  return x_bt + gain_b[:, None] * noise_bt


def crop_rows(signal, starts_b, length):
  """[B, length] rows of a 1-D signal starting at `starts_b`."""
  return jax.vmap(lambda s: jax.lax.dynamic_slice(signal, (s,), (length,)))(starts_b)


def distort(key, x_bt, noise, rirs_nl, snr_db_range=SNR_DB_RANGE, length=SEGMENT):
  """Reverberates then adds background noise; returns the last `length` samples.

  x_bt holds RIR_LEN context samples followed by the excerpt (1 s, or a
  multi-segment query's whole span). `noise` is a 1-D concatenation of
  background recordings; `rirs_nl` a bank to draw rooms from.
  """
  b = x_bt.shape[0]
  k_rir, k_noise, k_snr = jax.random.split(key, 3)
  rir_bl = rirs_nl[jax.random.randint(k_rir, (b,), 0, rirs_nl.shape[0])]
  wet_bs = reverberate(x_bt, rir_bl)[:, -length:]
  noise_starts_b = jax.random.randint(k_noise, (b,), 0, noise.shape[0] - length)
  noise_bs = crop_rows(noise, noise_starts_b, length)
  snr_db_b = jax.random.uniform(k_snr, (b,), minval=snr_db_range[0], maxval=snr_db_range[1])
  return mix_at_snr(wet_bs, noise_bs, snr_db_b)
