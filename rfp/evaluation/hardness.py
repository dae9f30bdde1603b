"""Distractor hardness: how often the best distractor outscores a query's true match.

That is what makes a distractor a distractor, so it is the figure synthetic
rows are judged by. Scores are exact inner products over every distractor row,
streamed in blocks, so no index approximation blurs the comparison.
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
      np.fmax(self.best, scores.max(1), out=self.best)  # fmax: a NaN row never wins.


def hardness_point(inputs, distractors, bar=None):
  """Share of queries whose best distractor outscores their true match (exact)."""
  best = BestScores(inputs.queries_qd)
  for _, x in distractors.chunks():
    best.update(x)
    if bar is not None:
      bar.update(len(x))
  return {'hard': float(np.mean(best.best > inputs.true_scores))}
