"""Report helpers: readable axes, statistics that say what they are."""

from rfp import report
from rfp.evaluation import fidelity


def test_tick_labels_blank_a_size_that_crowds_the_previous_label():
  sizes = [1000, 10000, 30000, 75475, 100000, 300000, 1000000]
  # A size that is not a round number reads in thousands, to three figures.
  assert report._tick_labels(sizes) == ['1k', '10k', '30k', '75.5k', '', '300k', '1M']
  assert report._tick_labels([1000, 1400, 2000]) == ['1k', '', '2k']


def test_spread_is_shown_only_over_independent_repeats():
  point = {'size': 1000, 'hr1': {'mean': 0.715, 'std': 0.001}, 'shared_rows': False}
  assert report._mean_std(point, 'hr1') == '71.5 ± 0.1'
  assert report._mean_std({**point, 'shared_rows': True}, 'hr1') == '71.5†'  # Overlapping draws.
  assert report._mean_std({**point, 'hr1': {'mean': 0.715, 'std': None}}, 'hr1') == '71.5'
  assert report._mean_std(None, 'hr1') == '–'
  curves = {'synthetic': [point, {**point, 'shared_rows': True}]}
  assert report._spread_text(curves, 1) == 'one distractor set per size, so no spread is shown.'
  assert '† marks sizes whose repeats share rows' in report._spread_text(curves, 2)


def test_prdc_against_gaussian_noise_is_not_shown_but_said_why():
  figures = {'fd': 1.0, 'js': 0.5, 'precision': 0.9, 'recall': 0.8, 'density': 1.1,
             'coverage': 0.7}
  pairs = {key: dict(figures) for key, _ in report._PAIRS}
  pairs['synthetic_vs_gaussian'].update(dict.fromkeys(fidelity.PRDC))
  text = report._fidelity({'fidelity': {
      'rows': 100, 'real': 'r.npy', 'real2': 'r2.npy', 'pca_dims': 20, 'prdc_k': 5,
      'pairs': pairs, 'prdc_not_shown': fidelity.NO_PRDC}})
  row = next(line for line in text.splitlines() if line.startswith('| S ‖ G'))
  assert row.split(' | ')[3:] == ['–', '–', '–', '– |']
  assert 'S ‖ G: no precision, recall, density or coverage: against N(0, I)' in text
