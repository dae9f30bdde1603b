"""The results dict's Table 3 and verdict."""

import numpy as np
import pytest

from rfp.evaluation import results, stats

QUERIES = 1000


def test_table3_anchors_and_degradation():
  def curve(sizes, hr):
    return {'synthetic': [{'size': s, 'hr1': {'mean': h, 'std': 0}} for s, h in zip(sizes, hr)]}
  t = results.table3(curve([1_000, 1_000_000, 100_000_000], [0.9, 0.6, 0.3]), {})
  assert (t['size_lo'], t['size_hi']) == (1_000_000, 100_000_000)
  assert t['degradation_pct'] == pytest.approx(50.0)
  t = results.table3(curve([1_000, 10_000], [0.8, 0.6]), {})
  assert (t['size_lo'], t['size_hi'], t['degradation_pct']) == (1_000, 10_000, pytest.approx(25.0))


def _point(size, hard):
  """A sweep point of one repeat: the first queries hard, so two curves'
  hard queries nest (flags as correlated as they can be)."""
  flags = stats.pack(np.arange(QUERIES) < round(hard * QUERIES))
  return {'size': size, 'hard': {'mean': hard, 'std': None},
          'repeats': [{'hard': hard, 'hard_q': flags}]}


def _curves(real, synthetic, real2, sizes=(1_000, 10_000, 80_000)):
  return {kind: [_point(s, h) for s, h in zip(sizes, values)]
          for kind, values in (('real', real), ('synthetic', synthetic), ('real2', real2))}


def test_verdict_trusts_synthetic_rows_within_the_real_floor_band():
  v = results.verdict(_curves([0.06, 0.09, 0.13], [0.062, 0.088, 0.127], [0.065, 0.091, 0.125]))
  assert v['status'] == 'trust' and v['size'] == 80_000 and v['growth_from'] == 10_000
  assert v['excess'] == pytest.approx(0.0) and v['growth'] == pytest.approx(0.975)
  assert v['text'].startswith('Trust the extrapolation') and 'at 80,000 distractors' in v['text']


def test_verdict_reads_the_growth_not_a_mean_over_sizes():
  # The right level at 10k and half of real's growth from there: a mean of
  # the excess over sizes would pass it (0.8 points over three sizes, 0.27 on
  # average); the trend does not.
  v = results.verdict(_curves([0.06, 0.09, 0.13], [0.06, 0.09, 0.11], [0.061, 0.091, 0.128]))
  assert v['status'] == 'optimistic' and v['growth'] == pytest.approx(0.5)
  assert 'growth off' in v['text'] and 'grows 0.50x as fast as real' in v['text']


def test_verdict_says_which_way_the_level_is_off():
  easy = results.verdict(_curves([0.06, 0.09, 0.13], [0.04, 0.07, 0.11], [0.061, 0.09, 0.13]))
  assert easy['status'] == 'optimistic' and 'level off' in easy['text']
  # Nested flags: the difference is 20 queries in 1,000, each one hard on one side only.
  se = np.std(np.arange(QUERIES) < 20, ddof=1) / np.sqrt(QUERIES)
  assert easy['difference_se'] == pytest.approx(se)
  assert f'-2.00 ± {100 * se:.2f} points from real' in easy['text']
  hard = results.verdict(_curves([0.06, 0.09, 0.13], [0.08, 0.11, 0.15], [0.06, 0.09, 0.13]))
  assert hard['status'] == 'pessimistic'
  assert results.verdict({'synthetic': []})['status'] == 'unchecked'


def test_verdict_is_read_where_the_second_real_set_ends_and_at_the_pool():
  # The second set is smaller than the pool: growth and band are read up to
  # its size (10k), the level there and at the pool with that band.
  curves = _curves([0.06, 0.09, 0.13], [0.06, 0.09, 0.132], [0.06, 0.095, 0.13])
  curves['real2'] = curves['real2'][:2]
  v = results.verdict(curves)
  assert (v['size'], v['largest'], v['growth_from']) == (10_000, 80_000, 1_000)
  assert v['band'] == pytest.approx(0.005) and v['status'] == 'trust'
  curves['synthetic'][2]['hard']['mean'] = 0.10
  v = results.verdict(curves)
  assert v['status'] == 'optimistic' and 'at 80,000 -3.00' in v['text']


def test_verdict_says_when_it_does_not_compare_like_with_like():
  curves = _curves([0.06, 0.09, 0.13], [0.062, 0.088, 0.127], [0.065, 0.091, 0.125])
  v = results.verdict(curves, comparison='It compares rows with tracks.')
  assert v['status'] == 'trust' and v['text'].endswith('It compares rows with tracks.')
