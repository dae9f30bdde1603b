"""Sequence search, as NAFP, PeakNetFP and NMFP do it: queries of L consecutive segments.

Each of a query's L segments is searched on its own in the IVF-PQ index
(`rfp.retrieval`); a hit on row i for segment l proposes the start row i - l.
A start is kept only if its L rows lie in one track of the database, so a
match never runs from the end of one track into the next. The distinct starts
of a query are scored exactly, by the mean inner product of the L query
segments with the L consecutive raw database rows, and the best one wins.

A database is a row source (references then distractors) plus its track
bounds: an int array `[tracks + 1]` of each track's first row, then the row
count. Hardness has an exact variant: every valid start of the distractor
tracks is scored, streamed in blocks of starts, each block reading L - 1 rows
past its end so that no start is cut off.
"""

import numpy as np

from rfp.errors import InputError
from rfp.evaluation import hardness, scaling
from rfp.retrieval import SEARCH_BATCH


def track_bounds(starts_t, n):
  """Track bounds `[tracks + 1]` from each track's first row (sorted) and the row count."""
  bounds = np.append(np.asarray(starts_t, np.int64), n)
  if bounds[0] != 0 or np.any(np.diff(bounds) <= 0):
    raise InputError(f'track starts {np.asarray(starts_t)[:10]} (of {n:,} rows): expected '
                     'increasing first rows of non-empty tracks, beginning at row 0')
  return bounds


def bounds_from_ids(track_id_n):
  """Track bounds of rows in track order: a track is a run of equal ids."""
  track_id_n = np.asarray(track_id_n)
  changes = np.flatnonzero(track_id_n[1:] != track_id_n[:-1]) + 1
  return track_bounds(np.concatenate([[0], changes]), len(track_id_n))


def stack_bounds(parts):
  """Bounds of row sources one after another (`rfp.rows.Stack`), from each one's bounds."""
  firsts, offset = [], 0
  for bounds in parts:
    firsts.append(bounds[:-1] + offset)
    offset += int(bounds[-1])
  return track_bounds(np.concatenate(firsts), offset)


def _check_bounds(bounds, rows, name):
  if bounds[-1] != rows.n:
    raise InputError(f'{name}: track bounds cover {int(bounds[-1]):,} rows, the rows number '
                     f'{rows.n:,}')


def valid_starts(starts, bounds, length):
  """Whether rows start..start + length - 1 exist and lie in one track."""
  starts = np.asarray(starts, np.int64)
  after = np.searchsorted(bounds, starts, side='right')  # 1 + each start's track.
  end = bounds[np.minimum(after, len(bounds) - 1)]
  return (starts >= 0) & (after < len(bounds)) & (starts + length <= end)


def start_scores(q_qld, db, starts_qc):
  """Mean inner product of each query's L segments with rows s..s+L-1 of `db`, for
  each candidate start s: `[q, c]`, -inf where the start is missing (-1).

  Starts must be valid (`valid_starts`); each distinct row is read once.
  """
  length = q_qld.shape[1]
  present = starts_qc >= 0
  scores = np.zeros(starts_qc.shape, np.float32)
  if not present.any():
    return np.full(starts_qc.shape, -np.inf, np.float32)
  rows_qcl = np.where(present, starts_qc, starts_qc[present][0])[..., None] + np.arange(length)
  unique = np.unique(rows_qcl)
  rows_ud = db.take(unique)
  pos_qcl = np.searchsorted(unique, rows_qcl)
  q_qld = np.asarray(q_qld, np.float32)
  # One segment at a time: memory holds [q, c, dim] rows, never [q, c, L, dim].
  for l in range(length):
    scores += np.einsum('qd,qcd->qc', q_qld[:, l], rows_ud[pos_qcl[:, :, l]])
  return np.where(present, scores / length, -np.inf).astype(np.float32)


def _distinct(starts_qc):
  """Each query's candidates with repeats replaced by -1."""
  starts_qc = np.sort(starts_qc, axis=1)
  starts_qc[:, 1:][starts_qc[:, 1:] == starts_qc[:, :-1]] = -1
  return starts_qc


def search_sequences(index, q_qld, db, bounds, k, top=1):
  """Sequence search: the best `top` starts and their scores, both `[q, top]`, best first.

  Every segment's top-k ids (`index.search`) minus its offset are the
  candidate starts; those not within one track are dropped and the rest are
  scored exactly (`start_scores`). Missing results are -1 with score -inf.
  Queries go in batches of about `SEARCH_BATCH` segments, so a batch holds
  at most `SEARCH_BATCH * k` candidate starts, as `retrieval.search` does
  candidates, plus their distinct rows (at most L per start).
  """
  _check_bounds(bounds, db, 'sequence search')
  n_q, length, dim = q_qld.shape
  starts = np.full((n_q, top), -1, np.int64)
  scores = np.full((n_q, top), -np.inf, np.float32)
  batch = max(1, SEARCH_BATCH // length)
  for i in range(0, n_q, batch):
    q = q_qld[i:i + batch]
    ids_blk = index.search(q.reshape(-1, dim), k).reshape(len(q), length, k)
    cand_blk = ids_blk - np.arange(length)[:, None]
    cand_blk[~valid_starts(cand_blk, bounds, length)] = -1  # Missing ids (-1) go negative.
    cand_bc = _distinct(cand_blk.reshape(len(q), -1))
    s_bc = start_scores(q, db, cand_bc)
    order = np.argsort(-s_bc, axis=1, kind='stable')[:, :top]
    found = min(top, order.shape[1])
    starts[i:i + len(q), :found] = np.take_along_axis(cand_bc, order, 1)
    scores[i:i + len(q), :found] = np.take_along_axis(s_bc, order, 1)
  return starts, scores


def sequence_hit_rates(best_start_q, gt_start_q, track_id_of_row, n_refs):
  """Top-1 shares as `scaling.hit_rates` names them: hr1 (the true start), near1
  (within one segment of it, same track) and track1 (a start in the right
  track); `track_id_of_row` gives the track of each reference row."""
  rates = scaling.hit_rates(np.asarray(best_start_q)[:, None], gt_start_q, n_refs,
                            track_id_of_row)
  return {key: rates[key] for key in ('hr1', 'near1', 'track1')}


def best_distractor_start_scores(q_qld, distractors, bounds, block=hardness.SCORE_BLOCK):
  """Each query's best `start_scores` over every valid start of `distractors` (exact).

  Starts are taken `block` at a time, reading the L - 1 rows after the block
  too; starts whose rows would cross into the next track are masked out. A
  query longer than every track scores -inf. Sequence hardness is the share
  of queries whose best here beats the score of their true start.
  """
  _check_bounds(bounds, distractors, 'sequence hardness')
  n_q, length, _ = q_qld.shape
  q_qld = np.asarray(q_qld, np.float32)
  best = np.full(n_q, -np.inf, np.float32)
  n_starts = distractors.n - length + 1
  for a in range(0, max(n_starts, 0), block):
    b = min(a + block, n_starts)
    valid = valid_starts(np.arange(a, b), bounds, length)
    if not valid.any():
      continue
    x_nd = distractors.read(a, b + length - 1)
    acc_qs = np.zeros((n_q, b - a), np.float32)
    for l in range(length):
      acc_qs += q_qld[:, l] @ x_nd[l:l + b - a].T
    # fmax: a NaN row never wins, as in `hardness.BestScores`.
    np.fmax(best, np.fmax.reduce(acc_qs[:, valid], axis=1) / length, out=best)
  return best
