"""Fidelity: how real synthetic rows look, read against real data's own floor.

FD, JS and precision/recall/density/coverage (paper, Sec. 4.2) of synthetic
rows against real ones, beside the same figures for Gaussian noise and for a
second, disjoint real set (the floor a perfect model would reach).
"""

import numpy as np
from tqdm import tqdm

from rfp import metrics, rows as rows_lib

PRDC = ('precision', 'recall', 'density', 'coverage')
# Pairs whose PRDC would describe the reference set, not the rows scored, and
# why; their FD and JS stay. (Against N(0, I) density read rows / k: 1000.)
NO_PRDC = {'synthetic_vs_gaussian': 'against N(0, I), whose k-NN balls (radius about '
                                    'sqrt(2 dim)) hold every unit-norm row, they would not '
                                    'depend on the rows scored'}


def fidelity(inputs, synthetic, rows, seed, progress=False):
  """Fidelity figures and the 2-D maps for `embedding.png`.

  Sets of `rows` rows each: R (real pool, else references), R2 (the second
  real set, else a disjoint half of R's source), S (synthetic), G (N(0, I),
  the flow's noise, as in the paper) and Gm (a Gaussian with R's mean and
  covariance: FD cannot tell it from R). Comparisons read "X || reference set".
  """
  rng = np.random.default_rng([seed, 10])
  source = inputs.real if inputs.real is not None else inputs.reference
  if inputs.real2 is not None:
    n = min(rows, synthetic.n, source.n, inputs.real2.n)
    r = source.take(rows_lib.sample_rows(source.n, n, rng))
    r2 = inputs.real2.take(rows_lib.sample_rows(inputs.real2.n, n, rng))
    r2_name = str(inputs.real2.path)
  else:
    n = min(rows, synthetic.n, source.n // 2)
    picked = rng.permutation(source.n)[:2 * n]
    r, r2 = source.take(np.sort(picked[:n])), source.take(np.sort(picked[n:]))
    r2_name = f'other rows of {source.path}'
  dim = source.dim
  if n <= min(metrics.PCA_DIMS, dim) + 1:
    return {'skipped': f'only {n} rows per set; the KDEs need more'}, None
  s = synthetic.take(rows_lib.sample_rows(synthetic.n, n, rng))
  g = rng.standard_normal((n, dim)).astype(np.float32)
  axes = metrics.principal_axes(r)
  stats = {'r': metrics.set_stats(r, axes)}
  gm = rng.multivariate_normal(stats['r'].mean, stats['r'].cov, size=n, method='eigh').astype(np.float32)
  stats.update({name: metrics.set_stats(x, axes)
                for name, x in (('s', s), ('g', g), ('gm', gm), ('r2', r2))})
  pairs = {'synthetic_vs_real': ('s', 'r'), 'synthetic_vs_gaussian': ('s', 'g'),
           'gaussian_vs_real': ('g', 'r'), 'matched_gaussian_vs_real': ('gm', 'r'),
           'real2_vs_real': ('r2', 'r')}
  # The KDE densities of each comparison are most of the time: the bar counts those.
  figures = {name: metrics.fidelity(stats[x], stats[ref], seed=seed)
             for name, (x, ref) in tqdm(pairs.items(), desc='fidelity', leave=False,
                                        disable=not progress)}
  for name in NO_PRDC:
    figures[name].update(dict.fromkeys(PRDC))
  plane = (axes[0], axes[1][:2])
  maps = {name: metrics.project(x, plane) for name, x in
          (('real', r), ('synthetic', s), ('matched Gaussian', gm), ('N(0, I)', g))}
  return {'rows': n, 'pca_dims': int(axes[1].shape[0]), 'prdc_k': metrics.PRDC_K,
          'real': str(source.path), 'real2': r2_name, 'pairs': figures,
          'prdc_not_shown': NO_PRDC}, maps
