"""Report helpers: readable axes, statistics that say what they are."""

from rfp import report
from rfp.evaluation import fidelity


def test_tick_labels_blank_a_size_that_crowds_the_previous_label():
  sizes = [1000, 10000, 30000, 75475, 100000, 300000, 1000000]
  # A size that is not a round number reads in thousands, to three figures.
  assert report._tick_labels(sizes) == ['1k', '10k', '30k', '75.5k', '', '300k', '1M']
  assert report._tick_labels([1000, 1400, 2000]) == ['1k', '', '2k']


def test_every_rate_shows_its_standard_error():
  point = {'size': 1000, 'hr1': {'mean': 0.715, 'std': 0.001, 'se': 0.0143},
           'shared_rows': False}
  assert report._mean_se(point, 'hr1') == '71.5 ± 1.4'
  assert report._mean_se({**point, 'shared_rows': True}, 'hr1') == '71.5 ± 1.4†'
  assert report._mean_se(None, 'hr1') == '–'
  curves = {'synthetic': [point, {**point, 'shared_rows': True}]}
  assert 'one distractor set per size' in report._spread_text(curves, 1)
  assert '† marks sizes whose repeats share rows' in report._spread_text(curves, 2)


def test_the_fields_figures_sit_beside_top1_exact_at_the_largest_real_size():
  def rates(hr1):
    return {key: {'mean': value, 'std': None, 'se': 0.01} for key, value in (
        ('hard', 0.1), ('hr1', hr1), ('near1', hr1 + 0.02), ('top3', hr1 + 0.05),
        ('top10', hr1 + 0.1))}
  def point(size, hr1):
    return {'size': size, 'shared_rows': False, 'sequences': {'1': rates(hr1), '3': rates(hr1 + 0.1)}}
  results = {'sequences': {'lengths': [1, 3]},
             'scaling': {'real': [point(100, 0.7), point(1000, 0.6)],
                         'synthetic': [point(100, 0.7), point(1000, 0.65), point(10000, 0.5)]}}
  text = report._field_figures(results, ['real', 'synthetic'],
                               {'real': 'real', 'synthetic': 'synthetic rows'})
  assert 'at 1,000 distractors' in text
  assert '| segments | curve | top-1 exact % | top-1 near (±1) % | top-3 % | top-10 % |' in text
  assert '| 3 | synthetic rows | 75.0 ± 1.0 | 77.0 ± 1.0 | 80.0 ± 1.0 | 85.0 ± 1.0 |' in text


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
