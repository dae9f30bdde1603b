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
