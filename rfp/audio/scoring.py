"""Exact-search hit rates of the built queries, as metadata.json reports them.

The rates themselves are the evaluation's (`rfp.evaluation.rates`,
distractor scores by `rfp.evaluation.hardness.BestScores`); this module finds
each query's top row exactly and names the rates as metadata.json always has.
"""

import jax
import numpy as np

from rfp import rows
from rfp.audio import augment
from rfp.audio.queries import CONDITIONS, make_queries
from rfp.bounds import bounds_from_ids
from rfp.evaluation import hardness, sequences
from rfp.evaluation.rates import hit_rates, sequence_hit_rates


def exact_top1(query_qd, reference_rd, distractors_nd=None):
  """[q] each query's best row by exact inner product over the references, or
  `len(reference_rd)` (past them: no reference row found) where some distractor
  scores at least as high: a tie is no hit."""
  q_qd = query_qd.astype(np.float32)
  scores_qr = q_qd @ reference_rd.astype(np.float32).T
  top_q = scores_qr.argmax(axis=1)
  if distractors_nd is None:
    return top_q
  best = hardness.BestScores(q_qd)
  best.update(distractors_nd.astype(np.float32))
  return np.where(best.best >= scores_qr[np.arange(len(q_qd)), top_q], len(reference_rd), top_q)


def top1_rates(query_qd, truth_q, reference_rd, reference_tracks_r):
  """Exact search over R: the top row is the true one ("hr1"), within ±1 row of it
  on the right track ("near", as the paper's systems also report), or anywhere on
  the right track ("track")."""
  rates = hit_rates(exact_top1(query_qd, reference_rd)[:, None], truth_q, len(reference_rd),
                    reference_tracks_r)
  return {'hr1': rates['hr1'], 'near': rates['near1'], 'track': rates['track1']}


def hit_rates_by_distractor_count(key, query_qd, truth_q, reference_rd, reference_tracks_r,
                                  distractors_nd, sizes=(1000, 10000, 30000), repeats=3):
  """HR@1 against R alone, then with random subsets of real distractors (mean, std)."""
  loose = top1_rates(query_qd, truth_q, reference_rd, reference_tracks_r)
  result = {'hr1_reference_only': loose['hr1'],
            'hr1_near_reference_only': loose['near'], 'track_reference_only': loose['track'],
            'with_distractors': []}
  n_refs, n_pool = reference_rd.shape[0], distractors_nd.shape[0]
  for size in [s for s in sizes if s < n_pool] + [n_pool]:
    runs = []
    for r in range(repeats if size < n_pool else 1):
      idx = jax.random.choice(jax.random.fold_in(key, size * repeats + r), n_pool, (size,), replace=False)
      top_q = exact_top1(query_qd, reference_rd, distractors_nd[np.sort(np.asarray(idx))])
      runs.append(hit_rates(top_q[:, None], truth_q, n_refs)['hr1'])
    result['with_distractors'].append({'n_distractors': size, 'hr1_mean': float(np.mean(runs)),
                                       'hr1_std': float(np.std(runs)), 'repeats': len(runs)})
  return result


def hit_rates_by_condition(key, params, audio, bounds, noise, query_rirs_nl, reference_rd,
                           reference_tracks_r, n_queries=500):
  """`top1_rates` against R alone for the same excerpts under each of `queries.CONDITIONS`:
  which distortion costs what."""
  dry_nl = np.zeros((1, augment.RIR_LEN), np.float32)
  dry_nl[0, 0] = 1.0
  rows = []
  for name, reverb, snr in CONDITIONS:
    q_qd, truth_q, _ = make_queries(key, params, audio, bounds, noise, n_queries,
                                    query_rirs_nl if reverb else dry_nl, snr)
    rows.append({'condition': name, 'queries': n_queries,
                 **top1_rates(q_qd, truth_q, reference_rd, reference_tracks_r)})
  return rows


def hit_rates_by_offset(query_qd, truth_q, off_grid_q, reference_rd, reference_tracks_r,
                        edges=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25)):
  """`top1_rates` against R alone for the queries in each band of distance from
  the database grid (seconds): an excerpt midway between two windows is the
  hardest to place."""
  rows = []
  for lo, hi in zip(edges[:-1], edges[1:]):
    band = (off_grid_q >= lo) & (off_grid_q < hi if hi < edges[-1] else off_grid_q <= hi)
    rows.append({'off_grid_seconds': [lo, hi], 'queries': int(band.sum()),
                 **(top1_rates(query_qd[band], truth_q[band], reference_rd, reference_tracks_r)
                    if band.any() else {})})
  return rows


def sequence_rates(query_qld, truth_q, reference_rd, reference_tracks_r, lengths):
  """Each query length's `top1_rates` for multi-segment queries: exact sequence
  search over R alone (every start within one track, `sequences.exact_best_starts`)."""
  best = sequences.exact_best_starts(query_qld, rows.ArrayRows(reference_rd),
                                     bounds_from_ids(reference_tracks_r), lengths)
  out = []
  for n in sorted(best):
    rates = sequence_hit_rates(best[n][1][:, None], truth_q, reference_tracks_r, len(reference_rd))
    out.append({'segments': n, 'hr1': rates['hr1'], 'near': rates['near1'],
                'track': rates['track1']})
  return out
