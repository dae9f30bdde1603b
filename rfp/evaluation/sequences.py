"""Sequence search, as NAFP, PeakNetFP and NMFP do it: queries of L consecutive segments.

Each of a query's L segments is searched on its own in the IVF-PQ index
(`rfp.retrieval`); a hit on row i for segment l proposes the start row i - l.
A start is kept only if its L rows lie in one track of the database, so a
match never runs from the end of one track into the next. The distinct starts
of a query are scored exactly, by the mean inner product of the L query
segments with the L consecutive raw database rows, and the best one wins.

A database is a row source (references then distractors) plus its track
bounds (`rfp.bounds`). The exact variant (`exact_best_starts`) scores every valid start of a
row source for every query length in one streamed pass: sequence hardness,
and the builder's search over the references alone.
"""

import numpy as np

from rfp.bounds import check_covers, valid_starts
from rfp.errors import InputError
from rfp.evaluation import hardness
from rfp.rows import SEARCH_BATCH


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


def segment_ids(index, q_qld, k):
  """Every segment's top-k ids, `[q, L, k]` (-1 where fewer exist), searched in
  batches of about `SEARCH_BATCH` segments."""
  n_q, length, dim = q_qld.shape
  ids_qlk = np.empty((n_q, length, k), np.int64)
  batch = max(1, SEARCH_BATCH // length)
  for i in range(0, n_q, batch):
    q = q_qld[i:i + batch]
    ids_qlk[i:i + len(q)] = index.search(q.reshape(-1, dim), k).reshape(len(q), length, k)
  return ids_qlk


def search_sequences(index, q_qld, db, bounds, k, top=1, ids_qlk=None):
  """Sequence search: the best `top` starts and their scores, both `[q, top]`, best first.

  Every segment's top-k ids (`segment_ids`) minus its offset are the
  candidate starts; those not within one track are dropped and the rest are
  scored exactly (`start_scores`). Missing results are -1 with score -inf.
  `ids_qlk`: the segments' ids already searched, for these queries or longer
  ones (their first L segments are used): queries of several lengths that
  share their first segments search them once. Queries are re-ranked in
  batches of about `SEARCH_BATCH` segments, so a batch holds at most
  `SEARCH_BATCH * k` candidate starts, as `retrieval.search` does
  candidates, plus their distinct rows (at most L per start).
  """
  check_covers(bounds, db, 'sequence search')
  n_q, length, _ = q_qld.shape
  ids_qlk = segment_ids(index, q_qld, k) if ids_qlk is None else ids_qlk[:, :length]
  starts = np.full((n_q, top), -1, np.int64)
  scores = np.full((n_q, top), -np.inf, np.float32)
  batch = max(1, SEARCH_BATCH // length)
  for i in range(0, n_q, batch):
    q = q_qld[i:i + batch]
    cand_blk = ids_qlk[i:i + len(q)] - np.arange(length)[:, None]
    cand_blk[~valid_starts(cand_blk, bounds, length)] = -1  # Missing ids (-1) go negative.
    cand_bc = _distinct(cand_blk.reshape(len(q), -1))
    s_bc = start_scores(q, db, cand_bc)
    order = np.argsort(-s_bc, axis=1, kind='stable')[:, :top]
    found = min(top, order.shape[1])
    starts[i:i + len(q), :found] = np.take_along_axis(cand_bc, order, 1)
    scores[i:i + len(q), :found] = np.take_along_axis(s_bc, order, 1)
  return starts, scores


def exact_best_starts(q_qld, rows, bounds, lengths, block=hardness.SCORE_BLOCK):
  """Each query's best valid start in `rows` for each length L in `lengths`, by exact
  search: {L: (best `start_scores` [q], its start [q], -1 if none)}.

  One pass over `rows`, `block` starts at a time (reading the longest length's
  L - 1 rows past the block); segment l's scores are added to the running sum
  of the first l, so the L-segment score of every start comes with the shorter
  ones. A query longer than every track scores -inf. Sequence hardness is the
  share of queries whose best here, over a distractor set, beats their true start.
  """
  check_covers(bounds, rows, 'exact sequence search')
  n_q, longest, _ = q_qld.shape
  lengths = sorted(int(n) for n in lengths)
  if lengths[-1] > longest:
    raise InputError(f'query length {lengths[-1]} asked of queries of {longest} segments')
  q_qld = np.asarray(q_qld, np.float32)
  best = {n: np.full(n_q, -np.inf, np.float32) for n in lengths}
  where = {n: np.full(n_q, -1, np.int64) for n in lengths}
  for a in range(0, rows.n, block):
    b = min(a + block, rows.n)
    x_nd = rows.read(a, min(b + lengths[-1] - 1, rows.n))
    # Rows past the end are zeros: the starts reading them are invalid anyway.
    x_nd = np.pad(x_nd, ((0, b - a + lengths[-1] - 1 - len(x_nd)), (0, 0)))
    acc_qs = np.zeros((n_q, b - a), np.float32)
    for l in range(lengths[-1]):
      acc_qs += q_qld[:, l] @ x_nd[l:l + b - a].T
      if l + 1 not in best:
        continue
      valid = valid_starts(np.arange(a, b), bounds, l + 1)
      # A NaN row never wins, as in `hardness.BestScores`.
      s_qs = np.where(valid & ~np.isnan(acc_qs), acc_qs / (l + 1), -np.inf)
      top = s_qs.argmax(axis=1)
      score = s_qs[np.arange(n_q), top]
      better = score > best[l + 1]
      best[l + 1][better], where[l + 1][better] = score[better], a + top[better]
  return {n: (best[n], where[n]) for n in lengths}
