"""Distractor hardness: how often the best distractor outscores a query's true match.

That is what makes a distractor a distractor, so it is the figure synthetic
rows are judged by. Scores are exact inner products over every distractor row,
streamed in blocks, so no index approximation blurs the comparison.

`probe_gaps` is the query-free version training selects models by: rows of
held-out tracks stand in for queries, and the best score each one finds among
N synthetic rows is compared with the best among N real rows of other tracks.
"""

import numpy as np

SCORE_BLOCK = 8192  # Distractor rows scored against all queries at once.


class BestScores:
  """Running max inner product of each query over streamed distractor rows."""

  def __init__(self, q_qd):
    self.q_qd = q_qd
    self.best = np.full(len(q_qd), -np.inf, np.float32)

  def update(self, x_nd):
    for i in range(0, len(x_nd), SCORE_BLOCK):
      scores = self.q_qd @ x_nd[i:i + SCORE_BLOCK].T
      # fmax: a NaN row never wins, nor hides the other rows of its block.
      np.fmax(self.best, np.fmax.reduce(scores, axis=1), out=self.best)


def exact_hardness(q_qd, true_q, distractors, bar=None):
  """Share of queries `q_qd` whose best row of `distractors` (a row source)
  outscores their true match's score `true_q` (exact)."""
  best = BestScores(q_qd)
  for _, x in distractors.chunks():
    best.update(x)
    if bar is not None:
      bar.update(len(x))
  return float(np.mean(best.best > true_q))


def hardness_point(inputs, distractors, bar=None):
  """A sweep point's hardness: `exact_hardness` of the evaluated queries."""
  return {'hard': exact_hardness(inputs.queries_qd, inputs.true_scores, distractors, bar)}


def probe_gaps(probes_pd, real_nd, synthetic_nd, sizes):
  """{N: mean best score of the probes among the first N synthetic rows minus the
  same among the first N real rows}, for each N in `sizes`.

  Positive: synthetic rows come closer to unseen music than real rows do, so
  they are harder distractors than real ones; negative: easier. The gap grows
  with N (a maximum over more rows), which is why it is read at several N.
  """
  gaps = {}
  for rows_nd, sign in ((synthetic_nd, 1.0), (real_nd, -1.0)):
    best, done = BestScores(probes_pd), 0
    for n in sorted(sizes):
      best.update(rows_nd[done:n])
      done = n
      gaps[n] = gaps.get(n, 0.0) + sign * float(best.best.mean())
  return {int(n): gaps[n] for n in sorted(sizes)}


def probe_sizes(n_samples, n_real):
  """The N the probe gaps are read at: a tenth of the rows both sides have, and all of them."""
  n = min(n_samples, n_real)
  return sorted({max(1, n // 10), n})


def probe_criterion(gaps):
  """One number to select a model by: the mean |gap| over sizes (0 is real)."""
  return float(np.mean(np.abs(list(gaps.values()))))
