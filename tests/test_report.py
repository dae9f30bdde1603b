"""Report helpers: readable axes on the scaling plot."""

from rfp import report


def test_tick_labels_blank_a_size_that_crowds_the_previous_label():
  sizes = [1000, 10000, 30000, 75475, 100000, 300000, 1000000]
  assert report._tick_labels(sizes) == ['1k', '10k', '30k', '75,475', '', '300k', '1M']
  assert report._tick_labels([1000, 1400, 2000]) == ['1k', '', '2k']
