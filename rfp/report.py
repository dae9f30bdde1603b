"""Writing an evaluation out: results.json, report.md, scaling.png, sequences.png
(one panel per query length, where multi-segment queries were run), embedding.png.

Rates are stored as fractions in results.json and shown as percentages in
the report and plots.
"""

import pathlib

import matplotlib

matplotlib.use('Agg')  # Files only; no display needed.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import ticker  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from rfp import files  # pylint: disable=g-import-not-at-top,wrong-import-position

_PAIRS = (  # (results key, label), in reading order: the model, then its yardsticks.
    ('synthetic_vs_real', 'S ‖ R'),
    ('real2_vs_real', "R' ‖ R (floor: real vs real)"),
    ('matched_gaussian_vs_real', 'Gm ‖ R'),
    ('gaussian_vs_real', 'G ‖ R'),
    ('synthetic_vs_gaussian', 'S ‖ G'),
)
_CURVES = (('real', 'real', 'C0'), ('synthetic', 'synthetic', 'C1'),
           ('tracks', 'synthetic tracks', 'C3'), ('real2', 'second real set (floor)', 'C2'))


def write(out, results, maps=None):
  """Writes every output file into `out` (created if needed); returns their paths."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = {'results': out / 'results.json', 'report': out / 'report.md',
           'scaling': out / 'scaling.png'}
  files.write_json(paths['results'], results)
  paths['report'].write_text(markdown(results))
  plot_scaling(results, paths['scaling'])
  if results.get('sequences'):
    paths['sequences'] = out / 'sequences.png'
    plot_sequences(results, paths['sequences'])
  if maps is not None:
    paths['embedding'] = out / 'embedding.png'
    plot_embedding(maps, paths['embedding'])
  return paths


def _pct(x, digits=2):
  return '–' if x is None else f'{100 * x:.{digits}f}'


def _mean_se(point, key, digits=1):
  """A scaling point's mean of `key` ± its standard error (queries and
  distractor draws, `rfp.evaluation.stats.standard_error`); † where the
  repeats share rows, whose overlapping draws understate the draws' part."""
  stat = point.get(key) if point else None
  if stat is None:
    return '–'
  return (f'{100 * stat["mean"]:.{digits}f} ± {100 * stat["se"]:.{digits}f}'
          + '†' * bool(point.get('shared_rows')))


def _num(x, fmt):
  return '–' if x is None else format(x, fmt)


def _size(n):
  for unit, div in (('M', 1_000_000), ('k', 1_000)):
    if n >= div and n % (div // 10) == 0:
      return f'{n / div:g}{unit}'
  return f'{n:,}'


def _table(header, rows):
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


def _table3(results):
  t = results['table3']
  name = results.get('system') or 'this run'
  rows = []
  if 'size_lo' in t:
    rows += [(f'HR@1 % ({_size(t["size_lo"])})', _pct(t['hr1_lo'])),
             (f'HR@1 % ({_size(t["size_hi"])})', _pct(t['hr1_hi'])),
             ('Degradation %', _num(t['degradation_pct'], '.2f'))]
  if 'js_synthetic_real' in t:
    rows += [('D_JS(S ‖ G)', _num(t['js_synthetic_gaussian'], '.4f')),
             ('D_JS(S ‖ R)', _num(t['js_synthetic_real'], '.4f')),
             ("D_JS(R' ‖ R), floor", _num(t['js_real2_real'], '.4f')),
             ('D_FD(S, R)', _num(t['fd_synthetic_real'], '.2e')),
             ("D_FD(R', R), floor", _num(t['fd_real2_real'], '.2e'))]
  return _table(['', name], rows)


def _fidelity(results):
  fid = results['fidelity']
  if 'pairs' not in fid:
    return f'Fidelity skipped: {fid.get("skipped")}.'
  rows = [(label, _num(p['fd'], '.3e'), _num(p['js'], '.4f'), _num(p['precision'], '.3f'),
           _num(p['recall'], '.3f'), _num(p['density'], '.3f'), _num(p['coverage'], '.3f'))
          for key, label in _PAIRS for p in [fid['pairs'][key]]]
  return '\n\n'.join([
      f'{fid["rows"]:,} rows per set. R: real distractors ({fid["real"]}); R\': a disjoint '
      f'real set ({fid["real2"]}); S: synthetic; G: N(0, I) noise, the paper\'s baseline; '
      'Gm: a Gaussian with R\'s mean and covariance. "X ‖ Y" scores X against Y.',
      _table(['', 'FD', 'JS (nats)', 'precision', 'recall', 'density', 'coverage'], rows),
      f'FD uses the raw vectors; JS compares Gaussian KDEs on the top {fid["pca_dims"]} '
      'principal components of R (ln 2 ≈ 0.693 means disjoint); precision, recall, density '
      f'and coverage use k = {fid["prdc_k"]} nearest-neighbour balls (Naeem et al. 2020). '
      'FD sees only means and covariances: Gm matches both, so it scores FD ≈ 0 while having '
      'none of the data\'s structure. Read each figure against the R\' ‖ R floor, the score of '
      f'real data itself: in {fid["pca_dims"]} dimensions a KDE of a few thousand rows is '
      'spiky, so even two real sets can be far from JS = 0.'
      + ''.join(f' {dict(_PAIRS)[key]}: no precision, recall, density or coverage: {why}.'
                for key, why in fid.get('prdc_not_shown', {}).items())])


def _point(curve, size):
  return next((p for p in curve if p['size'] == size), None)


def _at_length(point, length):
  """A sweep point's figures at one query length, in the shape `_mean_se` reads."""
  return {'size': point['size'], 'shared_rows': point.get('shared_rows'),
          **point['sequences'][str(length)]}


def _spread_text(curves, repeats):
  """What the ± in the tables is."""
  text = ('± one standard error over the query sample (binomial, √(p(1 − p)/n))'
          + (f' and the {repeats} distractor draws (their std²/{repeats} added), the mean over '
             'them' if repeats > 1 else ', one distractor set per size') + '.')
  if any(p.get('shared_rows') for c in curves.values() for p in c):
    text += (' † marks sizes whose repeats share rows (too few synthetic rows for disjoint '
             'sets, or the whole real pool): overlapping draws understate their part.')
  return text + (' A difference between two curves is judged on the same queries: its paired '
                 'error (in the verdicts) is smaller than the two ± together.')


def _scaling(results):
  curves = results['scaling']
  sizes = sorted({p['size'] for c in curves.values() for p in c})
  if not sizes:
    return 'No scaling points were run.'
  real, syn, real2 = (curves.get(k, []) for k in ('real', 'synthetic', 'real2'))
  hard = _table(
      ['distractors', 'hardness % real', 'hardness % synthetic', "hardness % real' (floor)",
       'HR@1 % real', 'HR@1 % synthetic'],
      [(f'{s:,}', _mean_se(_point(real, s), 'hard'), _mean_se(_point(syn, s), 'hard'),
        _mean_se(_point(real2, s), 'hard'), _mean_se(_point(real, s), 'hr1'),
        _mean_se(_point(syn, s), 'hr1'))
       for s in sizes])
  header = ['distractors', 'kind', 'HR@1 %', 'near (±1) %',
            f'top-{results["settings"]["eval"]["index"]["k"]} %']
  has_tracks = any('track1' in p for c in (real, syn) for p in c)
  if has_tracks:
    header.append('track top-1 %')
  rows = []
  for s in sizes:
    for kind, curve in (('real', real), ('synthetic', syn)):
      p = _point(curve, s)
      if p is None:
        continue
      row = [f'{s:,}', kind, _mean_se(p, 'hr1'), _mean_se(p, 'near1'), _mean_se(p, 'topk')]
      if has_tracks:
        row.append(_mean_se(p, 'track1'))
      rows.append(row)
  spread = _spread_text(curves, results['settings']['eval']['repeats'])
  return '\n\n'.join([
      'Hardness: share of queries whose best distractor (exact inner product, over the whole '
      'distractor set) outscores their true reference match. It is what a distractor is for, '
      'so real and synthetic rates side by side are the headline fidelity figure. Both tables: '
      + spread,
      hard,
      'Retrieval: IVF-PQ top-k, re-ranked by exact inner product.',
      _table(header, rows)])


def _tail(results):
  """The extreme-value estimate beside the synthetic curve, and the back-test."""
  tail = results.get('tail')
  if not tail:
    return ''
  syn = results['scaling'].get('synthetic', [])
  interval = lambda f: (f'{100 * f["mean"]:.1f}' if f['lo'] is None else
                        f'{100 * f["mean"]:.1f} [{100 * f["lo"]:.1f}, {100 * f["hi"]:.1f}]')
  rows = [(f'{int(n):,}', _mean_se(_point(syn, int(n)), 'hard'), interval(h),
           _mean_se(_point(syn, int(n)), 'hr1'), interval(tail['hr1'][n]))
          for n, h in tail['hardness'].items()]
  bt = tail['backtest']
  half, pool = sorted(bt['truth'], key=int)
  sees = {'extreme_value': 'its tail fitted on real whole tracks adding up to pool/8',
          'log_line': 'a line in log N through real sets of pool/64 to pool/8'}
  bt_rows = [(name.replace('_', ' '), sees.get(name, 'the run alone (no real rows)'),
              _pct(bt['predictions'][name][half], 1), f'{100 * err[half]:+.1f}',
              _pct(bt['predictions'][name][pool], 1), f'{100 * err[pool]:+.1f}')
             for name, err in bt['errors'].items()]
  return '\n\n'.join([
      f'An estimate that needs no model of the embeddings: {tail["method"]} '
      f'({tail["fit_rows"]:,} rows, {tail["fit_tracks"]:,} tracks), from the pool\'s size on. '
      'Per query, p = the chance '
      'that one distractor outscores its true match; hardness at N = mean over queries of '
      '1 − (1 − p)^N (Grother & Phillips, CVPR 2004); HR@1 = the real HR@1 at the pool times '
      'the share of its unbeaten queries that stay unbeaten.',
      _table(['distractors', 'hardness % synthetic', 'hardness % extreme-value [90 %]',
              'HR@1 % synthetic', 'HR@1 % extreme-value [90 %]'], rows),
      f'**Back-test.** Each estimate predicts the real pool\'s hardness, at half the pool '
      f'({int(half):,}: {_pct(bt["truth"][half], 1)} %) and the whole pool ({int(pool):,}: '
      f'{_pct(bt["truth"][pool], 1)} %), from what it may see; error = predicted − real, '
      'in points.',
      _table(['estimate', 'sees', f'at {int(half):,} %', 'error', f'at {int(pool):,} %', 'error'],
             bt_rows)])


def _seconds(segments, eval_cfg):
  return eval_cfg['window_seconds'] + (segments - 1) * eval_cfg['hop_seconds']


def _sequences(results):
  """Per query length: the verdicts, then hardness and HR@1 against size."""
  seq = results['sequences']
  e = results['settings']['eval']
  curves = results['scaling']
  kinds = [k for k in ('real', 'synthetic', 'tracks', 'real2') if k in curves]
  label = {'real': 'real', 'synthetic': 'synthetic ' + ('tracks' if seq['synthetic'] == 'tracks'
                                                        else 'rows'),
           'tracks': 'synthetic tracks', 'real2': "real' (floor)"}
  parts = [
      f'{seq["queries"]:,} queries of up to {max(seq["lengths"])} segments, searched as the '
      'systems do: each segment\'s top-k proposes a start, starts whose rows leave a track are '
      'dropped, the rest are re-ranked by the mean exact score over the run. Hardness: share of '
      'queries whose best run of distractor rows (exact, every start) outscores their true run. '
      f'Real sets are whole tracks; synthetic: {seq["synthetic"]}'
      + ('; synthetic tracks (rfp/tracks.py) beside them.' if 'tracks' in curves else '.')
      + (' I.i.d. rows cannot form a matching run of windows, so for long queries they are far '
         'easier than real tracks: read their curve of long queries as optimistic.'
         if seq['synthetic'].startswith('i.i.d.') else '')]
  for n in seq['lengths']:
    key = str(n)
    sized = {kind: [p for p in curves[kind] if 'sequences' in p] for kind in kinds}
    sizes = sorted({p['size'] for c in sized.values() for p in c})
    rows = []
    for size in sizes:
      point = {kind: _point(c, size) for kind, c in sized.items()}
      cell = lambda kind, metric: _mean_se(point[kind] and _at_length(point[kind], n), metric)
      rows.append([f'{size:,}'] + [cell(k, 'hard') for k in kinds]
                  + [cell(k, 'hr1') for k in kinds if k != 'real2'])
    verdicts = [f'**Verdict, {label["synthetic"]}.** {seq["verdicts"][key]["text"]}']
    if 'track_verdicts' in seq:
      verdicts.append(f'**Verdict, synthetic tracks.** {seq["track_verdicts"][key]["text"]}')
    tail = (results.get('tail') or {}).get('sequences', {}).get(key)
    if tail:
      verdicts.append('Extreme-value estimate (each track\'s best run, N counted in tracks): '
                      + ', '.join(f'{_pct(h, 1)} % at {_size(int(size))}'
                                  for size, h in tail.items()) + '.')
    parts += [f'### {n} segment{"s" * (n > 1)} ({_seconds(n, e):g} s)', *verdicts,
              _table(['distractors'] + [f'hardness % {label[k]}' for k in kinds]
                     + [f'HR@1 % {label[k]}' for k in kinds if k != 'real2'], rows)]
  return '\n\n'.join(parts + [_field_figures(results, [k for k in kinds if k != 'real2'], label),
                              '![sequences](sequences.png)'])


def _field_figures(results, kinds, label):
  """NAFP's figures (eval_faiss.py) beside top-1 exact, per length and curve, at
  the largest size the real curve ran the multi-segment queries (else any curve)."""
  curves = results['scaling']
  ran = {kind: {p['size']: p for p in curves[kind] if 'sequences' in p} for kind in kinds}
  size = max(ran.get('real') or {s for by_size in ran.values() for s in by_size})
  points = {kind: ran[kind][size] for kind in kinds if size in ran[kind]}
  lengths = results['sequences']['lengths']
  measured = next(iter(points.values()))['sequences'][str(lengths[0])]
  metrics = [(m, name) for m, name in (
      ('hr1', 'top-1 exact %'), ('near1', 'top-1 near (±1) %'), ('top3', 'top-3 %'),
      ('top10', 'top-10 %'), ('track1', 'track top-1 %')) if m in measured]
  rows = [[n, label[kind]] + [_mean_se(_at_length(p, n), m) for m, _ in metrics]
          for n in lengths for kind, p in points.items()]
  return '\n\n'.join([
      f'**The field\'s figures at {size:,} distractors** (NAFP\'s eval_faiss.py: near counts a '
      'best start within one segment of the true one; top-3 and top-10, the true start among the '
      'best 3 or 10).',
      _table(['segments', 'curve'] + [name for _, name in metrics], rows)])


def _sequence_verdicts(results):
  """One line: each query length's verdict, for the synthetic rows and tracks."""
  seq = results.get('sequences')
  if not seq:
    return ''
  e = results['settings']['eval']
  said = []
  for key, what in (('verdicts', 'synthetic ' + ('tracks' if seq['synthetic'] == 'tracks'
                                                else 'rows')),
                    ('track_verdicts', 'synthetic tracks')):
    if key in seq:
      said.append(f'{what} ' + ', '.join(
          f'{_seconds(int(n), e):g} s {v["status"]}' for n, v in seq[key].items()))
  return ('**Multi-second queries** (section below): ' + '; '.join(said) + '.')


def _settings(results):
  e = results['settings']['eval']
  idx = e['index']
  built = sorted({(p['index']['nlist'], p['index']['nprobe'], p['index']['bits'])
                  for c in results['scaling'].values() for s in c for p in s['repeats']
                  if 'index' in p})
  inputs = results['inputs']
  lines = [
      f'- run: `{results["run"]["workdir"]}`; synthetic rows: `{results["synthetic"]["folder"]}` '
      f'({results["synthetic"]["rows"]:,} rows)',
      f'- references: `{inputs["reference"]}` ({inputs["reference_rows"]:,} rows, '
      f'{inputs["dim"]}-d); queries: `{inputs["queries"]}` ({inputs["queries_evaluated"]:,} '
      f'evaluated); ground truth: `{inputs["ground_truth"]}`',
      f'- real distractors: `{inputs["real_distractors"]}`'
      + (f' ({inputs["real_rows"]:,} rows)' if inputs['real_rows'] else ''),
      f'- index: IVF{idx["nlist"]},PQ{idx["code_bytes"]}x{idx["bits"]} (L2 coarse quantizer), '
      f'nprobe {idx["nprobe"]}, top-{idx["k"]}, trained on up to {idx["train_rows"]:,} rows '
      + ('once (references + real rows; every point reuses it); ' if idx.get('shared_training')
         else 'of each database; ')
      + f'{results["settings"]["device"]}, faiss {results["settings"]["faiss"]}',
  ]
  if built and any(b[0] != idx['nlist'] for b in built):
    lines.append('- built (nlist, nprobe, bits): ' + ', '.join(map(str, built)))
  phases = (('synthetic_sample', 'sampling'), ('synthetic_check', 'NaN/Inf check of the samples'),
            ('fidelity', 'fidelity'), ('scaling', 'scaling'))
  lines.append(f'- repeats {e["repeats"]}, seed {e["seed"]}; time: ' + ', '.join(
      f'{name} {results["seconds"][key]:.0f} s' for key, name in phases
      if key in results['seconds']))
  return '\n'.join(lines)


def _selection(results):
  sel = results.get('selection')
  if not sel or sel.get('val_probe') is None:
    return ''
  gaps = ', '.join(f'{float(g):+.4f} at {int(n):,}' for n, g in sel['val_probe_gaps'].items())
  return (f'Model: epoch {sel["epoch"]}, selected by the probe criterion {sel["val_probe"]:.4f} '
          f'(mean best score of held-out tracks among synthetic minus real rows: {gaps}; '
          f'validation FD {sel["val_fd"]:.3e}).')


def markdown(results):
  """The report: Table 3 layout first, then fidelity, scaling, settings, notes."""
  t = results['table3']
  parts = [
      f'# Evaluation of {results.get("system") or results["run"]["workdir"]}',
      f'**Verdict.** {results["verdict"]["text"]}' if 'verdict' in results else '',
      _sequence_verdicts(results),
      _selection(results),
      '## Summary (paper, Table 3 layout)',
      _table3(results),
      ('HR@1 at 1M and 100M synthetic distractors where both were run, else at the smallest and largest sizes run; '
       'degradation % = 100 · (HR@1 small − HR@1 large) / HR@1 small.'
       if 'size_lo' in t else ''),
      '## Fidelity', _fidelity(results),
      '## Distractor hardness and retrieval under scaling', _scaling(results),
      '![scaling](scaling.png)',
      *(['## Past the real pool: an extreme-value estimate', _tail(results)]
        if results.get('tail') else []),
      *(['## Multi-segment queries', _sequences(results)] if results.get('sequences') else []),
      '## Settings', _settings(results),
  ]
  if results['notes']:
    parts += ['## Notes', '\n'.join(f'- {n}' for n in results['notes'])]
  return '\n\n'.join(p for p in parts if p) + '\n'


def console(results):
  """The lines evaluate.py prints: Table 3's figures, the verdict, the
  extreme-value estimate at the largest size, each query length's verdict."""
  lines = []
  t = results['table3']
  if 'size_lo' in t:
    lines.append(f'HR@1 {100 * t["hr1_lo"]:.2f}% at {t["size_lo"]:,} and {100 * t["hr1_hi"]:.2f}% '
                 f'at {t["size_hi"]:,} synthetic distractors')
  if 'js_synthetic_real' in t:
    lines.append(f'JS(S||R) {t["js_synthetic_real"]:.4f} (real-vs-real floor '
                 f'{t["js_real2_real"]:.4f}), FD(S,R) {t["fd_synthetic_real"]:.2e}')
  lines.append(f'verdict: {results["verdict"]["text"]}')
  tail = results.get('tail')
  if tail:
    n = max(tail['hardness'], key=int)
    h, hr = tail['hardness'][n], tail['hr1'][n]
    errors = tail['backtest']['errors']
    pool = max(tail['backtest']['truth'], key=int)
    lines.append(
        f'extreme-value estimate at {int(n):,}: hardness {100 * h["mean"]:.1f}% '
        f'[{100 * h["lo"]:.1f}, {100 * h["hi"]:.1f}], HR@1 {100 * hr["mean"]:.1f}%; back-test '
        f'error at the pool ({int(pool):,}): '
        + ', '.join(f'{name.replace("_", " ")} {100 * e[pool]:+.1f}' for name, e in errors.items())
        + ' points')
  seq = results.get('sequences')
  for key, what in (('verdicts', f'synthetic {seq and seq["synthetic"]}'),
                    ('track_verdicts', 'synthetic tracks')):
    if seq and key in seq:
      lines.append(f'multi-segment queries, {what}: ' + '; '.join(
          f'{n} segments {v["status"]}' for n, v in seq[key].items()))
  return lines


def _band(ax, curve, key, label, color):
  if not curve:
    return
  x = np.array([p['size'] for p in curve])
  m = np.array([p[key]['mean'] for p in curve]) * 100
  s = np.array([p[key]['se'] for p in curve]) * 100  # The tables' ± (`_mean_se`).
  ax.plot(x, m, 'o-', color=color, label=label, ms=4)
  ax.fill_between(x, m - s, m + s, color=color, alpha=0.2, lw=0)


def _tick_labels(sizes, min_ratio=1.5):
  """A label per size, blank where it would crowd the previous label on a log axis
  (e.g. a real pool of 75,475 next to 100k)."""
  labels, last = [], None
  for s in sizes:
    keep = last is None or s >= last * min_ratio
    labels.append((_size(s) if s % 1000 == 0 else f'{s / 1000:.3g}k') if keep else '')
    last = s if keep else last
  return labels


def plot_scaling(results, path):
  """HR@1 and hardness against distractor count (log x), bands of ± one
  standard error."""
  fig, (ax_hr, ax_hard) = plt.subplots(1, 2, figsize=(11, 4))
  for kind, label, color in _CURVES:
    curve = results['scaling'].get(kind, [])
    if kind != 'real2':
      _band(ax_hr, curve, 'hr1', label, color)
    _band(ax_hard, curve, 'hard', label, color)
  tail = results.get('tail')
  if tail:
    for ax, key in ((ax_hr, 'hr1'), (ax_hard, 'hardness')):
      x = np.array([int(n) for n in tail[key]])
      f = list(tail[key].values())
      ax.plot(x, [100 * v['mean'] for v in f], 's--', color='C4', ms=3,
              label='extreme-value estimate (real pool)')
      if f[0]['lo'] is not None:
        ax.fill_between(x, [100 * v['lo'] for v in f], [100 * v['hi'] for v in f], color='C4',
                        alpha=0.15, lw=0)
  ax_hr.set(title='Top-1 hit rate', ylabel='HR@1 (%)')
  ax_hard.set(title='Distractor hardness', ylabel='queries whose best distractor\n'
              'outscores the true match (%)')
  sizes = sorted({p['size'] for c in results['scaling'].values() for p in c})
  labels = _tick_labels(sizes)
  for ax in (ax_hr, ax_hard):
    ax.set_xscale('log')
    ax.set_xticks(sizes, labels)
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel('distractors')
    ax.grid(alpha=0.3)
    if ax.has_data():
      ax.legend()
  fig.suptitle(results.get('system') or '')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_sequences(results, path):
  """HR@1 (top row) and hardness (bottom row) against distractor count, one
  column per query length."""
  seq = results['sequences']
  e = results['settings']['eval']
  lengths = seq['lengths']
  # Each panel scaled to its own curves: HR@1 rises with length, and one shared
  # axis would flatten every curve.
  fig, axes = plt.subplots(2, len(lengths), figsize=(3.4 * len(lengths), 6.4), squeeze=False)
  sizes = sorted({p['size'] for c in results['scaling'].values() for p in c if 'sequences' in p})
  for j, n in enumerate(lengths):
    curves = {kind: [_at_length(p, n) for p in c if 'sequences' in p]
              for kind, c in results['scaling'].items()}
    for kind, label, color in _CURVES:
      if kind == 'synthetic' and seq['synthetic'] != 'tracks':
        label = 'synthetic rows (i.i.d.)'
      if kind != 'real2':
        _band(axes[0, j], curves.get(kind, []), 'hr1', label, color)
      _band(axes[1, j], curves.get(kind, []), 'hard', label, color)
    axes[0, j].set_title(f'{n} segment{"s" * (n > 1)} ({_seconds(n, e):g} s)')
    for ax in axes[:, j]:
      ax.set_xscale('log')
      ax.set_xticks(sizes, _tick_labels(sizes))
      ax.xaxis.set_minor_formatter(ticker.NullFormatter())
      ax.grid(alpha=0.3)
    axes[1, j].set_xlabel('distractors')
  axes[0, 0].set_ylabel('HR@1 (%)')
  axes[1, 0].set_ylabel('queries whose best distractor\nrun outscores the true one (%)')
  axes[1, 0].legend(fontsize=8)
  drawn = [label for kind, label, _ in _CURVES if kind in results['scaling']]
  fig.suptitle(f'{results.get("system") or ""} multi-segment queries: '
               + ', '.join(drawn).replace('synthetic,', 'synthetic '
                                         + ('tracks,' if seq['synthetic'] == 'tracks'
                                            else 'i.i.d. rows,')))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_embedding(maps, path):
  """Each set over the real rows on the real set's top two principal axes."""
  others = [k for k in maps if k != 'real']
  fig, axes = plt.subplots(1, len(others), figsize=(4.2 * len(others), 4.2))
  for ax, name, color in zip(np.atleast_1d(axes), others, ('C1', 'C3', 'C4', 'C5')):
    ax.scatter(*maps['real'].T, s=2, alpha=0.3, color='C0', label='real', rasterized=True)
    ax.scatter(*maps[name].T, s=2, alpha=0.3, color=color, label=name, rasterized=True)
    ax.set(title=f'real and {name}', xlabel='PC 1', ylabel='PC 2')
    ax.legend(markerscale=4, loc='upper right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
