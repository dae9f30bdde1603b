"""Temporal statistics of fingerprint tracks, and the noise fit that reproduces them.

A track is a run of consecutive rows (one window per hop of one recording);
a set of tracks is a row source (`rfp.rows`) plus its bounds, int
`[tracks + 1]`: each track's first row, then the row count
(`rfp.evaluation.sequences.bounds_from_ids` makes them from track ids).

Three statistics describe how a track moves, each computed per track so that
real and synthetic tracks can be compared as distributions:

  lag similarity   mean cosine similarity of windows t and t + lag (lags 1 .. 32)
  repetition       each window's best cosine with a window of the same track
                   at least `min_lag` hops away (loops, choruses), and the
                   distance of that match
  lengths          windows per track

The rest is the no-JAX half of the track generator (`rfp.tracks`):
`fit_weights` finds the weights of stationary noise processes (AR(1) of
fixed rates and one MA(1)) whose correlation at each lag matches a target
(non-negative least squares, weights summing to at most 1, the rest white
noise), so that every window's noise stays N(0, I); `repeat_statistics`
reads, per track, how much of it repeats, how far back and how closely:
what the generator's sections replay.
"""

import contextlib
import warnings

import numpy as np
import scipy.optimize

# The track generator's version (`rfp.tracks`), here so that finding a sample
# folder of the current generator (`rfp.synthetic`) loads no JAX.
GENERATOR = 'sections/2'
LAGS = (1, 2, 4, 8, 16, 32)
MIN_LAG = 8  # Repetition looks at least 4 s away at 0.5 s hop: past the lag-similarity decay.
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# Rows of one Gram block while looking for repetitions: memory stays
# O(block x track) even for a very long track.
_BLOCK = 2048


def track_rows(rows, bounds, track):
  """Rows of one track as float32 unit vectors `[length, dim]`."""
  x_td = rows.read(int(bounds[track]), int(bounds[track + 1]))
  return x_td / np.maximum(np.linalg.norm(x_td, axis=1, keepdims=True), 1e-12)


def lag_similarity(rows, bounds, lags=LAGS, tracks=None):
  """`[tracks, lags]`: each track's mean cosine similarity at each lag (NaN where
  the track is not longer than the lag). `tracks`: indices to use (default all)."""
  tracks = range(len(bounds) - 1) if tracks is None else tracks
  out = np.full((len(tracks), len(lags)), np.nan)
  for i, track in enumerate(tracks):
    x_td = track_rows(rows, bounds, track)
    for j, lag in enumerate(lags):
      if len(x_td) > lag:
        out[i, j] = np.mean(np.sum(x_td[lag:] * x_td[:-lag], axis=1))
  return out


def repetition(rows, bounds, min_lag=MIN_LAG, tracks=None):
  """(best `[n]`, lag `[n]`): each window's best cosine with a window of its own
  track `min_lag` or more rows away, and how many rows away that window is,
  concatenated over `tracks` (NaN and 0 for windows that have none)."""
  tracks = range(len(bounds) - 1) if tracks is None else tracks
  best_out, lag_out = [], []
  for track in tracks:
    x_td = track_rows(rows, bounds, track)
    best = np.full(len(x_td), -np.inf, np.float32)
    lag = np.zeros(len(x_td), np.int64)
    for a in range(0, len(x_td), _BLOCK):
      sim_bt = x_td[a:a + _BLOCK] @ x_td.T
      dist_bt = np.abs(np.arange(a, a + len(sim_bt))[:, None] - np.arange(len(x_td)))
      sim_bt[dist_bt < min_lag] = -np.inf
      j = sim_bt.argmax(axis=1)
      best[a:a + len(sim_bt)] = sim_bt[np.arange(len(j)), j]
      lag[a:a + len(sim_bt)] = dist_bt[np.arange(len(j)), j]
    found = np.isfinite(best)
    best_out.append(np.where(found, best, np.nan))
    lag_out.append(np.where(found, lag, 0))
  if not best_out:
    return np.zeros(0), np.zeros(0, np.int64)
  return np.concatenate(best_out), np.concatenate(lag_out)


def track_lengths(bounds):
  return np.diff(np.asarray(bounds, np.int64))


def summary(rows, bounds, lags=LAGS, min_lag=MIN_LAG, tracks=None, matches=None):
  """The three statistics as a JSON-able dict (spread over tracks and windows).
  `matches`: `repetition`'s result for these tracks, if already computed."""
  sim_tl = lag_similarity(rows, bounds, lags, tracks)
  best_n, lag_n = matches or repetition(rows, bounds, min_lag, tracks)
  lengths = track_lengths(bounds)
  lengths = lengths if tracks is None else lengths[np.asarray(tracks, np.int64)]
  lag_n = lag_n[np.isfinite(best_n)]
  best_n = best_n[np.isfinite(best_n)]
  with _all_nan_ok():
    return {
        'tracks': len(sim_tl),
        'lag_similarity': {
            'lags': list(lags),
            'mean': _floats(np.nanmean(sim_tl, axis=0)),
            'std': _floats(np.nanstd(sim_tl, axis=0)),
            **{f'q{int(q * 100)}': _floats(np.nanquantile(sim_tl, q, axis=0)) for q in QUANTILES},
        },
        'repetition': {
            'min_lag': min_lag,
            'share_above': {str(t): float(np.mean(best_n > t)) if len(best_n) else None
                            for t in THRESHOLDS},
            'quantiles': {str(q): float(np.quantile(best_n, q)) if len(best_n) else None
                          for q in QUANTILES},
            # Rows between a window and its best match: loops, sections, whole-track repeats.
            'lag_quantiles': {str(q): float(np.quantile(lag_n, q)) if len(lag_n) else None
                              for q in QUANTILES},
        },
        'lengths': {'mean': float(np.mean(lengths)), 'min': int(lengths.min()),
                    'max': int(lengths.max()),
                    'quantiles': {str(q): float(np.quantile(lengths, q)) for q in QUANTILES}},
    }


def nanmean(sim_tl):
  """Mean over tracks of each lag, NaN (without a warning) where no track reaches it."""
  with _all_nan_ok():
    return np.nanmean(sim_tl, axis=0)


@contextlib.contextmanager
def _all_nan_ok():
  """Statistics of tracks too short for a lag are NaN, not a warning."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', RuntimeWarning)
    yield


def _floats(a):
  return [None if not np.isfinite(v) else float(v) for v in a]


def profile_groups(sim_tl, profiles):
  """Each track's profile: `profiles` groups of near-equal size by the track's
  mean lag similarity (its rank), so that slowly and quickly changing music
  each get noise of their own."""
  with _all_nan_ok():
    score = np.nan_to_num(np.nanmean(sim_tl, axis=1), nan=0.0)
  rank = np.argsort(np.argsort(score, kind='stable'), kind='stable')
  return (rank * profiles // max(len(score), 1)).astype(np.int64)


def ar_correlation(rates, lags):
  """`[lags, rates]`: the lag-k correlation a^k of a stationary AR(1) process of rate a."""
  return np.asarray(rates, np.float64)[None, :] ** np.asarray(lags, np.float64)[:, None]


def component_correlation(rates, lags):
  """`[lags, rates + 1]`: the correlation at each lag of the AR(1) processes of
  `rates`, then of the MA(1) process (e_t + e_{t-1}) / sqrt(2): 1/2 at lag 1 and
  0 beyond. Neighbouring windows share half their audio, so real similarity
  falls from lag 1 to 2 faster than any AR(1) mixture can (a - a^2 <= 1/4)."""
  ma_l = np.where(np.asarray(lags) == 1, 0.5, 0.0)[:, None]
  return np.hstack([ar_correlation(rates, lags), ma_l])


def fit_weights(target, lags, rates):
  """Weights w >= 0 (sum <= 1) of the AR(1) processes of the given rates and of
  the MA(1) process (last) whose mixture (`component_correlation` @ w) is
  nearest the target noise correlation at each lag.

  The rest, 1 - sum w, is white noise (correlation 0 at every lag >= 1); it
  is a column of its own, and a heavily weighted row makes all of them sum to 1.
  """
  a_lk = component_correlation(rates, lags)
  a_lk = np.hstack([a_lk, np.zeros((len(lags), 1))])
  scale = 100.0
  design = np.vstack([a_lk, np.full((1, a_lk.shape[1]), scale)])
  target = np.append(np.clip(np.asarray(target, np.float64), 0.0, 1.0), scale)
  w, _ = scipy.optimize.nnls(design, target)
  w = w[:-1]
  return w / max(1.0, w.sum())


def noise_targets(similarity, response_rho, response_sim):
  """Noise correlation whose output similarity is `similarity`, read off a measured
  response curve (output similarity at noise correlation rho, increasing in rho)."""
  monotone = np.maximum.accumulate(np.asarray(response_sim, np.float64))
  return np.interp(np.asarray(similarity, np.float64), monotone, np.asarray(response_rho))


# Quantile levels of the per-track distributions a synthetic track draws from.
LEVELS = tuple(np.linspace(0.0, 1.0, 11))


def repeat_statistics(best_n, lag_n, bounds, tracks, strong):
  """Per track of `tracks` (the order `repetition` concatenated them in): the
  share of its windows whose best far match is `strong` or closer, and, over
  those windows, the quantiles (`LEVELS`) of the match's distance in rows and
  of its cosine. `[]` quantiles where a track has no such window."""
  out, start = [], 0
  for n in track_lengths(bounds)[np.asarray(tracks, np.int64)]:
    best, lag = best_n[start:start + n], lag_n[start:start + n]
    start += n
    hit = np.isfinite(best) & (best >= strong)
    out.append({'share': float(np.mean(hit)) if n else 0.0,
                'lags': [float(v) for v in np.quantile(lag[hit], LEVELS)] if hit.any() else [],
                'levels': [float(v) for v in np.quantile(best[hit], LEVELS)] if hit.any() else []})
  return out


def offset_steps(best_n, lag_n, strong):
  """How often the best match's distance moves by one row between neighbouring
  strong windows (among moves of at most one): the drift of a loop whose
  period is not a whole number of hops. Pairs across tracks are rare enough to ignore."""
  hit = np.isfinite(best_n) & (best_n >= strong)
  both = hit[1:] & hit[:-1]
  step = np.abs(np.diff(lag_n))[both]
  step = step[step <= 1]
  return float(np.mean(step == 1)) if len(step) else 0.0
