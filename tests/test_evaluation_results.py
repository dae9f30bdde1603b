"""The results dict's Table 3."""

import pytest

from rfp.evaluation import results


def test_table3_anchors_and_degradation():
  def curve(sizes, hr):
    return {'synthetic': [{'size': s, 'hr1': {'mean': h, 'std': 0}} for s, h in zip(sizes, hr)]}
  t = results.table3(curve([1_000, 1_000_000, 100_000_000], [0.9, 0.6, 0.3]), {})
  assert (t['size_lo'], t['size_hi']) == (1_000_000, 100_000_000)
  assert t['degradation_pct'] == pytest.approx(50.0)
  t = results.table3(curve([1_000, 10_000], [0.8, 0.6]), {})
  assert (t['size_lo'], t['size_hi'], t['degradation_pct']) == (1_000, 10_000, pytest.approx(25.0))


def _curves(real, synthetic, real2):
  sizes = [1_000, 10_000, 50_000]
  return {kind: [{'size': s, 'hard': {'mean': h, 'std': 0.0}} for s, h in zip(sizes, values)]
          for kind, values in (('real', real), ('synthetic', synthetic), ('real2', real2))}


def test_verdict_trusts_synthetic_rows_within_the_real_floor_band():
  v = results.verdict(_curves([0.06, 0.09, 0.11], [0.062, 0.085, 0.112], [0.065, 0.088, 0.105]))
  assert v['status'] == 'trust' and v['mean_excess'] == pytest.approx(0.003 / 3)
  assert v['text'].startswith('Trust the extrapolation') and '1,000 to 50,000' in v['text']


def test_verdict_says_which_way_the_curve_is_off():
  easy = results.verdict(_curves([0.06, 0.09, 0.11], [0.04, 0.07, 0.09], [0.061, 0.09, 0.11]))
  assert easy['status'] == 'optimistic' and 'easier than real ones by 2.00 points' in easy['text']
  hard = results.verdict(_curves([0.06, 0.09, 0.11], [0.10, 0.15, 0.2], [0.06, 0.09, 0.11]))
  assert hard['status'] == 'pessimistic' and 'harder' in hard['text']
  assert results.verdict({'synthetic': []})['status'] == 'unchecked'


def test_verdict_carries_the_floor_band_past_the_second_real_set():
  curves = _curves([0.06, 0.09, 0.11], [0.06, 0.09, 0.104], [0.06, 0.095, 0.11])
  curves['real2'] = curves['real2'][:2]  # The second set is smaller than the pool.
  v = results.verdict(curves)
  assert v['excess'] == pytest.approx([0.0, 0.0, 0.001])
