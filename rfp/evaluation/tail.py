"""An extreme-value estimate of hardness past the real pool, independent of the flow.

A query is beaten when one of N distractors outscores its true match. With
p_q = P(one distractor row outscores query q's true match), hardness at N rows
is mean_q 1 - (1 - p_q)^N; conditioning per query, not pooling the scores of
all queries, is what keeps the binomial model unbiased (Grother & Phillips,
"Models of large population recognition performance", CVPR 2004). p_q is tiny
at large N, far below what a pool of real rows can count, so it is read from
the tail of that query's scores against the real pool: above a threshold u_q
(the query's k-th best score) the excesses are modelled by a generalized Pareto
distribution (Pickands-Balkema-de Haan; per-query tails as in Scheirer et al.'s
meta-recognition, TPAMI 2011), fitted by probability-weighted moments (Hosking &
Wallis, Technometrics 1987): closed form, so every query of every bootstrap
draw is fitted at once. Where the true match sits below u_q, p_q is the
observed share of rows above it; no tail is needed.

Scores are exact inner products against every row of the fit set. Rows of one
track are correlated, so the fit set is whole tracks and the interval comes
from resampling those tracks (a bootstrap over tracks), which is what makes a
fit on few tracks show its noise.

Multi-segment queries score runs of a track's rows, and a track's runs
overlap: there the units are tracks, each scored by its best run
(`track_maxima`), and N is counted in tracks (`sequence_estimate`).

`backtest` asks each way of reaching past the pool the same question on the
real pool itself: predict the pool's hardness, and half of it, from what that
way may see.
"""

import dataclasses

import numpy as np
from tqdm import tqdm

from rfp import rows as rows_lib
from rfp.evaluation import hardness, scaling, sequences

TAIL_SHARE = 0.02  # Exceedances per query: this share of the fit rows...
TAIL_MIN, TAIL_MAX = 50, 1000  # ...within these counts.
BOOTSTRAP = 200  # Track resamples for the interval.
INTERVAL = (5, 95)  # Percentiles of the bootstrap: a 90 % interval.
PLOTTING = 0.35  # Hosking & Wallis's plotting position (j - 0.35) / k.


@dataclasses.dataclass(frozen=True)
class TopScores:
  """What a fit needs of each query's scores against the fit rows."""
  s_qk: np.ndarray  # [q, K] best scores, descending.
  r_qk: np.ndarray  # [q, K] their rows.
  t_qk: np.ndarray  # [q, K] their tracks (index into `lengths`).
  above_qt: np.ndarray  # [q, tracks] rows of each track above the query's true score.
  lengths: np.ndarray  # [tracks] rows per track.

  @property
  def n(self):
    return int(self.lengths.sum())


def top_scores(q_qd, true_q, rows, bounds, keep):
  """One exact pass over `rows` (a row source; tracks `bounds`): each query's
  `keep` best scores with their tracks, and per track the rows that outscore
  the query's true match."""
  n_q, n_t = len(q_qd), len(bounds) - 1
  s_qk = np.full((n_q, 0), -np.inf, np.float32)
  r_qk = np.zeros((n_q, 0), np.int64)
  above_qt = np.zeros((n_q, n_t), np.int64)
  track_of_row = np.repeat(np.arange(n_t, dtype=np.int32), np.diff(bounds))
  for start, x_nd in rows.chunks():
    for i in range(0, len(x_nd), hardness.SCORE_BLOCK):
      s_qb = q_qd @ x_nd[i:i + hardness.SCORE_BLOCK].T
      first = start + i
      t_b = track_of_row[first:first + s_qb.shape[1]]
      # Rows above the true score, summed per track: a track's rows are
      # consecutive, so each track is a run of columns.
      edges = np.flatnonzero(np.r_[True, t_b[1:] != t_b[:-1]])
      above_qt[:, t_b[edges]] += np.add.reduceat(s_qb > true_q[:, None], edges, axis=1)
      s_qk = np.concatenate([s_qk, s_qb], axis=1)
      r_b = np.arange(first, first + s_qb.shape[1])
      r_qk = np.concatenate([r_qk, np.broadcast_to(r_b, s_qb.shape)], axis=1)
      if s_qk.shape[1] > keep:
        part = np.argpartition(-s_qk, keep - 1, axis=1)[:, :keep]
        s_qk = np.take_along_axis(s_qk, part, 1)
        r_qk = np.take_along_axis(r_qk, part, 1)
  order = np.argsort(-s_qk, axis=1)
  r_qk = np.take_along_axis(r_qk, order, 1)
  return TopScores(np.take_along_axis(s_qk, order, 1), r_qk, track_of_row[r_qk], above_qt,
                   np.diff(bounds))


def tail_count(n):
  """Exceedances per query for a fit on `n` rows."""
  return int(np.clip(round(TAIL_SHARE * n), TAIL_MIN, TAIL_MAX))


def gpd_sf(y, scale, shape):
  """Survival function of the generalized Pareto distribution, shape xi in the
  usual sign (xi < 0: a bounded tail, as inner products of unit vectors have)."""
  y = np.maximum(y, 0.0)
  with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
    base = 1.0 + shape * y / scale
    sf = np.where(np.abs(shape) < 1e-6, np.exp(-y / scale),
                  np.power(np.maximum(base, 0.0), -1.0 / np.where(shape == 0, 1.0, shape)))
  return np.where(base > 0, sf, 0.0)


def exceed_probs(top, true_q, weights_t=None, decluster=True):
  """p_q: the probability that one row of the fit set's distribution outscores
  query q's true match, `[q]`; `weights_t` (times each track is drawn, for a
  bootstrap) weights the tracks; `decluster` scales p by the extremal index
  (False where the units are independent already, e.g. whole tracks)."""
  w_t = np.ones(len(top.lengths)) if weights_t is None else np.asarray(weights_t, np.float64)
  n = float(w_t @ top.lengths)
  k = tail_count(n)
  w_qk = w_t[top.t_qk]
  cum_qk = np.cumsum(w_qk, axis=1)
  inside = cum_qk <= k  # The k best rows (by weight): the exceedances.
  u_q = np.take_along_axis(top.s_qk, np.minimum(inside.sum(1, keepdims=True),
                                                top.s_qk.shape[1] - 1), 1)[:, 0]
  w_qk = np.where(inside, w_qk, 0.0)
  kw_q = w_qk.sum(1)
  y_qk = np.where(inside, top.s_qk - u_q[:, None], 0.0)
  # Probability-weighted moments a_r = E[y (1 - F)^r], r = 0, 1.
  one_minus_f = (cum_qk - (1.0 - PLOTTING) * w_qk) / np.maximum(kw_q, 1)[:, None]
  a0 = (w_qk * y_qk).sum(1) / np.maximum(kw_q, 1)
  a1 = (w_qk * one_minus_f * y_qk).sum(1) / np.maximum(kw_q, 1)
  with np.errstate(divide='ignore', invalid='ignore'):
    kappa = a0 / (a0 - 2 * a1) - 2  # Hosking & Wallis's k = -xi.
    scale = 2 * a0 * a1 / (a0 - 2 * a1)
  p_tail = kw_q / n * gpd_sf(true_q - u_q, scale, -kappa)
  p_count = (top.above_qt @ w_t) / n
  in_tail = (true_q >= u_q) & np.isfinite(scale) & (scale > 0)
  p_q = np.where(in_tail, p_tail, p_count)
  return p_q * extremal_index(top, k) if decluster else p_q


def extremal_index(top, k):
  """Per query, the extremal index of its k best rows, by Ferro & Segers's
  intervals estimator (J. R. Stat. Soc. B, 2003) on the gaps between their
  rows: near 1 where they are scattered, 1 / (cluster size) where they come in
  runs of neighbouring windows. `[q]` in (0, 1]."""
  r_qk = np.sort(top.r_qk[:, :k], axis=1).astype(np.float64)
  t_qk = np.diff(r_qk, axis=1)  # [q, k - 1] gaps.
  m = t_qk.shape[1]
  with np.errstate(divide='ignore', invalid='ignore'):
    short = 2 * t_qk.sum(1) ** 2 / (m * (t_qk ** 2).sum(1))
    long = 2 * (t_qk - 1).sum(1) ** 2 / (m * ((t_qk - 1) * (t_qk - 2)).sum(1))
  theta = np.where(t_qk.max(1) > 2, long, short)
  return np.clip(np.nan_to_num(theta, nan=1.0), 1.0 / k, 1.0)


def _unbeaten(p_q, n):
  """[q] (1 - p_q)^n: the chance that none of n rows outscores each query's true
  match (n may be fractional: a count of tracks)."""
  return np.exp(n * np.log1p(-np.clip(p_q, 0.0, 1.0 - 1e-12)))


def hardness_at(p_q, sizes):
  """{N: mean_q 1 - (1 - p_q)^N}, the expected hardness at N i.i.d. rows."""
  return {int(n): float(np.mean(1.0 - _unbeaten(p_q, n))) for n in sizes}


def estimate(q_qd, true_q, rows, bounds, sizes, seed, bootstrap=BOOTSTRAP, hr1_pool=None):
  """Hardness predicted at each of `sizes` from a tail fitted on `rows` (whole
  tracks `bounds`), and HR@1 where `hr1_pool`, the real HR@1 measured with
  all of `rows`, anchors it: {'hardness'/'hr1': {N: {'mean', 'lo', 'hi'}}, ...},
  lo-hi the bootstrap interval over tracks (None without draws)."""
  top = top_scores(q_qd, true_q, rows, bounds, 3 * tail_count(rows.n))
  unbeaten_q = top.above_qt.sum(1) == 0

  def figures(p_q):
    out = {'hardness': hardness_at(p_q, sizes)}
    if hr1_pool is not None:
      out['hr1'] = hr1_at(p_q, unbeaten_q, hr1_pool, rows.n, sizes)
    return out

  point = figures(exceed_probs(top, true_q))
  rng = np.random.default_rng([seed, 7])
  n_t = len(top.lengths)
  draws = [figures(exceed_probs(top, true_q, rng.multinomial(n_t, np.full(n_t, 1 / n_t))))
           for _ in range(bootstrap)]
  out = {'fit_rows': rows.n, 'fit_tracks': n_t, 'exceedances': tail_count(rows.n)}
  for key, values in point.items():
    out[key] = {}
    for n, v in values.items():
      lo, hi = (np.percentile([d[key][n] for d in draws], INTERVAL) if draws else (None, None))
      out[key][n] = {'mean': v, 'lo': None if lo is None else float(lo),
                     'hi': None if hi is None else float(hi)}
  return out


def log_line(sizes, values, at):
  """A straight line in log N through (sizes, values), read at `at`."""
  slope, intercept = np.polyfit(np.log(sizes), values, 1)
  return {int(n): float(intercept + slope * np.log(n)) for n in at}


def backtest(q_qd, true_q, real, bounds, synthetic, seed, draws=3):
  """Each estimate predicts the real pool's hardness, at the pool and at half
  of it, from what it may see: the extreme-value tail from whole tracks adding
  up to pool/8 (`draws` draws), a straight line in log N through real sets of
  pool/64 to pool/8, and synthetic rows (`synthetic`: {name: row source}) from
  the run alone. Returns the truth and each one's prediction and error."""
  pool = real.n
  targets = [pool // 2, pool]

  def real_sets(size):
    return [rows_lib.Subset(real, scaling.whole_tracks(
        bounds, size, np.random.default_rng([seed, 8, size, d]))[0]) for d in range(draws)]

  truth = {pool: hardness.exact_hardness(q_qd, true_q, real)}
  truth[pool // 2] = float(np.mean([hardness.exact_hardness(q_qd, true_q, s) for s in real_sets(pool // 2)]))
  fits = []
  for d in range(draws):
    rows, set_bounds = scaling.whole_tracks(bounds, pool // 8, np.random.default_rng([seed, 9, d]))
    fit = estimate(q_qd, true_q, rows_lib.Subset(real, rows), set_bounds, targets, seed,
                   bootstrap=0)
    fits.append(fit['hardness'])
  predictions = {'extreme_value': {n: float(np.mean([f[n]['mean'] for f in fits]))
                                   for n in targets}}
  line_sizes = [pool // 64, pool // 32, pool // 16, pool // 8]
  line_values = [np.mean([hardness.exact_hardness(q_qd, true_q, s) for s in real_sets(n)])
                 for n in line_sizes]
  predictions['log_line'] = log_line(line_sizes, line_values, targets)
  for name, source in synthetic.items():
    predictions[name] = {n: hardness.exact_hardness(q_qd, true_q, rows_lib.Slice(source, 0, n))
                         for n in targets}
  return {'truth': truth, 'predictions': predictions,
          'errors': {name: {n: p[n] - truth[n] for n in targets}
                     for name, p in predictions.items()}}


def hr1_at(p_q, unbeaten_q, hr1_pool, n_pool, sizes):
  """{N: HR@1 predicted at N rows}: the real HR@1 measured at the pool times the
  share of the queries unbeaten there that stay unbeaten among N - n_pool more
  rows (hits are taken to be spread evenly over the unbeaten queries)."""
  if not unbeaten_q.any():
    return {int(n): 0.0 for n in sizes}
  return {int(n): float(hr1_pool * np.mean(_unbeaten(p_q[unbeaten_q], max(n - n_pool, 0))))
          for n in sizes}


NO_TRACKS_BLOCK = 500  # Rows per pseudo-track where a pool has no track ids.


def evaluate(inputs, synthetic, sizes, hr1_pool, seed, progress=False):
  """The extreme-value estimate from the whole real pool at each of `sizes`
  (HR@1 anchored at `hr1_pool`, the real HR@1 measured at the pool), and the
  back-test of it beside the synthetic rows (`synthetic`: {name: row source})
  and a line in log N; with multi-segment queries, theirs per length."""
  steps = ('fit on the pool', 'back-test', 'multi-segment queries')
  bar = tqdm(total=len(steps) - (inputs.sequences is None), desc='extreme-value estimate',
             bar_format='{desc}: {n}/{total}{postfix} ({elapsed})', disable=not progress)
  bar.set_postfix_str(steps[0])
  real = inputs.real
  bounds = inputs.bounds.get('real')
  if bounds is None:  # Blocks of consecutive rows stand in for tracks.
    bounds = np.append(np.arange(0, real.n, NO_TRACKS_BLOCK), real.n)
  q_qd, true_q = inputs.queries_qd, inputs.true_scores
  fit = estimate(q_qd, true_q, real, bounds, sizes, seed, hr1_pool=hr1_pool)
  bar.update()
  bar.set_postfix_str(steps[1])
  fit['backtest'] = backtest(q_qd, true_q, real, bounds,
                             {k: v for k, v in synthetic.items() if v is not None and v.n >= real.n},
                             seed)
  bar.update()
  fit = json_keys(fit)
  if inputs.sequences is not None:
    bar.set_postfix_str(steps[2])
    fit['sequences'] = sequence_estimate(inputs.sequences, real, bounds, sizes)
    bar.update()
  bar.close()
  fit['method'] = ('per-query generalized Pareto tail of exact scores against the real pool, '
                   f'fitted by probability-weighted moments above each query\'s '
                   f'{fit["exceedances"]:,}th best score; 90 % interval from {BOOTSTRAP} '
                   'resamples of the pool\'s tracks')
  return fit


def json_keys(tree):
  """Sizes as string keys throughout, as results.json stores them."""
  if isinstance(tree, dict):
    return {str(k): json_keys(v) for k, v in tree.items()}
  return tree


def disagreement(tail, synthetic_hardness, size):
  """One line where the synthetic and extreme-value figures at `size` differ by
  more than their back-test errors at the pool together, else None."""
  errors = tail['backtest']['errors']
  pool = max(tail['backtest']['truth'], key=int)
  names = [n for n in errors if n not in ('extreme_value', 'log_line')]
  if not names or str(size) not in tail['hardness']:
    return None
  allowed = abs(errors['extreme_value'][pool]) + abs(errors[names[0]][pool])
  evt = tail['hardness'][str(size)]['mean']
  if abs(synthetic_hardness - evt) <= allowed:
    return None
  return (f'At {size:,} distractors synthetic hardness {100 * synthetic_hardness:.1f} % and the '
          f'extreme-value estimate {100 * evt:.1f} % disagree by more than their back-test errors '
          f'together ({100 * allowed:.1f} points).')


def track_maxima(q_qld, rows, bounds, lengths):
  """{L: [q, tracks] each query's best run score of L segments in each track}
  (exact; -inf where a track is shorter than L)."""
  n_t = len(bounds) - 1
  out = {n: np.full((len(q_qld), n_t), -np.inf, np.float32) for n in lengths}
  for t in range(n_t):
    a, b = int(bounds[t]), int(bounds[t + 1])
    best = sequences.exact_best_starts(q_qld, rows_lib.Slice(rows, a, b), np.array([0, b - a]),
                                       lengths)
    for n in lengths:
      out[n][:, t] = best[n][0]
  return out


def sequence_estimate(seq, real, bounds, sizes):
  """{L: {N: hardness}} of the multi-segment queries `seq` (`inputs.Sequences`)
  at N distractor rows: per query, a tail fitted on its best run in each track
  of the pool (`real`, tracks `bounds`), N counted in tracks of the pool's mean
  length."""
  maxima = track_maxima(seq.q_qld, real, bounds, seq.lengths)
  n_t = len(bounds) - 1
  per_track = real.n / n_t
  out = {}
  for n, m_qt in maxima.items():
    # A track shorter than L has no run: it scores as its query's worst track.
    finite = np.isfinite(m_qt)
    m_qt = np.where(finite, m_qt, np.min(np.where(finite, m_qt, np.inf), axis=1, keepdims=True))
    true_q = seq.true_scores[n]
    order = np.argsort(-m_qt, axis=1)
    top = TopScores(np.take_along_axis(m_qt, order, 1), order, order,
                    (m_qt > true_q[:, None]).astype(np.int64), np.ones(n_t, np.int64))
    p_q = exceed_probs(top, true_q, decluster=False)
    out[str(n)] = {str(size): float(np.mean(1.0 - _unbeaten(p_q, size / per_track)))
                   for size in sizes}
  return out
