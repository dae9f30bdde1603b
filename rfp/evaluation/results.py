"""One evaluation, end to end: fidelity, the scaling sweep and the results dict.

The results dict is what `rfp.report` writes out (results.json, report.md,
plots). Rates are fractions.
"""

import dataclasses
import json
import os
import time

import numpy as np

from rfp import files, retrieval
from rfp.errors import InputError
from rfp.evaluation import (fidelity as fidelity_lib, inputs as inputs_lib, scaling, stats,
                            tail as tail_lib)

# Anchors of the paper's Table 3; used when those sizes were run.
TABLE3_SIZES = (1_000_000, 100_000_000)
# The verdict's tolerances: synthetic hardness at the largest checked size
# within the real floor band plus LEVEL_TOLERANCE (a fraction: 0.5 points),
# and its growth (slope in log N over real's) no further from 1 than the
# second real set's growth plus GROWTH_TOLERANCE.
LEVEL_TOLERANCE = 0.005
GROWTH_TOLERANCE = 0.15
GROWTH_SPAN = 8  # Growth is read from about an eighth of the largest checked size.


def _slope(hard, lo, hi):
  return (hard[hi] - hard[lo]) / np.log(hi / lo)


def like_with_like(inputs, synthetic_bounds, tracks):
  """What the verdict compares: a sentence where it is not like with like, else None."""
  if inputs.bounds.get('real') is None or synthetic_bounds is not None:
    return None
  return ('It compares i.i.d. synthetic rows with real sets of whole tracks'
          + ('; the synthetic-track verdicts (multi-segment queries, 1 segment included) '
             'compare tracks with tracks.' if tracks else '.'))


def _paired_se(a, b):
  """Paired standard error of point a's hardness minus b's, judged on the same
  queries (each repeat's per-query flags)."""
  return stats.paired_standard_error(*([stats.unpack(r['hard_q']) for r in p['repeats']]
                                       for p in (a, b)))


def verdict(curves, tail=None, comparison=None):
  """Whether to trust the synthetic curve, read where the extrapolation is
  decided: at the largest size that has a second real set (else the largest
  real size) and in the growth up to it, never as a mean over sizes (small
  sizes, where nothing is at stake, would dominate it).

  Level: synthetic minus real hardness beyond the floor band |second real -
  real| at that size, and at the largest real size (the band carried there). Growth: synthetic slope in log N over real's from the
  measured size nearest an eighth of it, against the second real set's slope
  over real's (how far two real sets differ). Both within tolerance: trust;
  else easier or slower-growing synthetic rows make the extrapolated HR@1
  optimistic, harder or faster-growing ones pessimistic. Each level carries
  its paired standard error (`_paired_se`). `comparison` says
  what is compared where it is not like with like; with the extreme-value
  estimate (`tail`), one more line where it and the synthetic curve part at
  the largest size by more than their back-test errors.
  """
  points = {kind: {p['size']: p for p in curves.get(kind, [])}
            for kind in ('real', 'synthetic', 'real2')}
  hard = {kind: {size: p['hard']['mean'] for size, p in by_size.items()}
          for kind, by_size in points.items()}
  sizes = sorted(set(hard['real']) & set(hard['synthetic']))
  if not sizes:
    return {'status': 'unchecked', 'sizes': [],
            'text': 'Not checked: no real distractor pool, so nothing tells whether synthetic '
                    'distractors are as hard as real ones; read the synthetic curve as unverified.'}
  floor_sizes = [s for s in sizes if s in hard['real2']]
  top = (floor_sizes or sizes)[-1]
  band = abs(hard['real2'][top] - hard['real'][top]) if floor_sizes else 0.0
  diff = hard['synthetic'][top] - hard['real'][top]
  # Past the second real set (the whole pool, often) its band at `top` stands in.
  last = sizes[-1]
  diff_last = hard['synthetic'][last] - hard['real'][last]
  se, se_last = (_paired_se(points['synthetic'][n], points['real'][n]) for n in (top, last))
  out = {'sizes': sizes, 'size': top, 'difference': float(diff), 'difference_se': se,
         'band': float(band), 'largest': last, 'difference_largest': float(diff_last),
         'difference_largest_se': se_last,
         'excess': float(max(0.0, abs(diff) - band, abs(diff_last) - band))}
  lower = [s for s in (floor_sizes or sizes) if s < top]
  growth_ok, slower = True, False
  if lower:
    lo = min(lower, key=lambda s: abs(np.log(s * GROWTH_SPAN / top)))
    real_slope = _slope(hard['real'], lo, top)
    out['growth_from'] = lo
    if real_slope > 0:
      ratio = _slope(hard['synthetic'], lo, top) / real_slope
      floor = _slope(hard['real2'], lo, top) / real_slope if floor_sizes and lo in hard['real2'] else 1.0
      out.update({'growth': float(ratio), 'floor_growth': float(floor),
                  'growth_excess': float(max(0.0, abs(ratio - 1) - abs(floor - 1)))})
      growth_ok, slower = out['growth_excess'] <= GROWTH_TOLERANCE, ratio < 1
  level_ok = out['excess'] <= LEVEL_TOLERANCE
  level = (f'at {top:,} distractors synthetic hardness is {100 * diff:+.2f} ± {100 * se:.2f} '
           f'points from real (floor band {100 * band:.2f})')
  if last != top:
    level += f', at {last:,} {100 * diff_last:+.2f} ± {100 * se_last:.2f}'
    diff = diff if abs(diff) >= abs(diff_last) else diff_last
  growth = ('' if 'growth' not in out else
            f'; from {out["growth_from"]:,} it grows {out["growth"]:.2f}x as fast as real '
            f'(second real set {out["floor_growth"]:.2f}x)')
  if level_ok and growth_ok:
    out['status'] = 'trust'
    out['text'] = f'Trust the extrapolation: {level}{growth}.'
  else:
    easier = slower if not growth_ok else diff < 0
    out['status'] = 'optimistic' if easier else 'pessimistic'
    why = ' and '.join(w for w, bad in (('level', not level_ok), ('growth', not growth_ok)) if bad)
    out['text'] = (f'The extrapolated HR@1 is {out["status"]} ({why} off): {level}{growth}.')
  if comparison:
    out['comparison'] = comparison
    out['text'] += ' ' + comparison
  synthetic = curves.get('synthetic', [])
  if tail is not None and synthetic:
    line = tail_lib.disagreement(tail, synthetic[-1]['hard']['mean'], synthetic[-1]['size'])
    if line:
      out['disagreement'] = line
      out['text'] += ' ' + line
  return out


def sequence_curves(curves, length):
  """The curves of one query length, in the shape `verdict` reads."""
  key = str(length)
  return {kind: [{'size': p['size'], **p['sequences'][key],
                  'repeats': [r['sequences'][key] for r in p['repeats']]}
                 for p in curve if 'sequences' in p]
          for kind, curve in curves.items()}


def sequence_summary(inputs, curves, synthetic_tracks):
  """What the multi-segment queries showed: their settings and a verdict per
  length, for the synthetic rows and, where they were run, synthetic tracks."""
  seq = inputs.sequences
  if seq is None:
    return None
  out = {'lengths': list(seq.lengths), 'queries': len(seq.ground_truth),
         'synthetic': 'tracks' if synthetic_tracks else 'i.i.d. rows (one long track)',
         'verdicts': {str(n): verdict(sequence_curves(curves, n)) for n in seq.lengths}}
  if 'tracks' in curves:
    as_synthetic = {**curves, 'synthetic': curves['tracks']}
    out['track_verdicts'] = {str(n): verdict(sequence_curves(as_synthetic, n))
                             for n in seq.lengths}
  return out


def selection(workdir, step):
  """The training log's record of the checkpoint the synthetic rows came from."""
  record = next((r for r in files.read_metrics(workdir) if r['step'] == step), None)
  return record and {k: record.get(k) for k in ('epoch', 'step', 'val_fd', 'val_probe',
                                                'val_probe_gaps')}


def table3(curves, fidelity_figures):
  """The paper's Table 3 for this run: HR@1 at two synthetic sizes, degradation, JS, FD.

  The sizes are 1M and 100M where both were run, else the smallest and largest run.
  """
  by_size = {p['size']: p['hr1']['mean'] for p in curves.get('synthetic', [])}
  out = {}
  if by_size:
    both = all(size in by_size for size in TABLE3_SIZES)
    lo, hi = TABLE3_SIZES if both else (min(by_size), max(by_size))
    out.update({'size_lo': lo, 'hr1_lo': by_size[lo], 'size_hi': hi, 'hr1_hi': by_size[hi],
                'degradation_pct': (100 * (by_size[lo] - by_size[hi]) / by_size[lo]
                                    if hi > lo and by_size[lo] > 0 else None)})
  pairs = fidelity_figures.get('pairs')
  if pairs:
    out.update({'js_synthetic_gaussian': pairs['synthetic_vs_gaussian']['js'],
                'js_synthetic_real': pairs['synthetic_vs_real']['js'],
                'fd_synthetic_real': pairs['synthetic_vs_real']['fd'],
                'js_real2_real': pairs['real2_vs_real']['js'],
                'fd_real2_real': pairs['real2_vs_real']['fd']})
  return out


@dataclasses.dataclass(frozen=True)
class Plan:
  """What an evaluation will do, settled before any row is sampled or indexed."""
  inputs: inputs_lib.Inputs
  spec: retrieval.IndexSpec
  sizes: dict  # {'synthetic', 'real', 'real2', 'sequence', 'tracks'} -> distractor counts.
  notes: tuple
  synthetic_rows: int  # Enough for disjoint repeats at the largest size.
  synthetic_minimum: int  # The fewest that will do (repeats then share rows).
  track_rows: int  # Synthetic track rows likewise (0: no track curve).


def plan(config, run, progress=False):
  """Checks every input and setting of `config.eval` against the run (its config
  dict `run`); any problem is one `InputError`."""
  eval_cfg = config.eval
  inputs = inputs_lib.open_inputs(eval_cfg, run, progress)
  spec = retrieval.IndexSpec.from_config(eval_cfg.index)
  spec.subquantizers(inputs.reference.dim)
  sizes, notes = scaling.plan_sizes(eval_cfg, inputs)
  if eval_cfg.fidelity_rows < 1:
    raise InputError(f'eval.fidelity_rows={eval_cfg.fidelity_rows}: must be at least 1')
  largest = sizes['synthetic'][-1]
  return Plan(inputs, spec, sizes, tuple(inputs.notes) + tuple(notes),
              max(eval_cfg.repeats * largest, eval_cfg.fidelity_rows),
              max(largest, eval_cfg.fidelity_rows),
              eval_cfg.repeats * max(sizes['tracks'], default=0))


def _identity(eval_cfg, inputs, synthetic_info, tracks, merged):
  """What a sweep point is measured from, for `scaling.FinishedPoints`: the
  settings, each input file as it is now (size, modification time) and the
  synthetic rows' provenance. Some inputs are descriptions, not files (a NAFP
  folder's ground truth)."""
  def stat(path):
    if not os.path.exists(path):
      return str(path)
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]
  provenance = lambda info: info and {k: v for k, v in info.items()
                                      if k not in ('sampled_now', 'seconds')}
  return {'eval': json.loads(eval_cfg.to_json()),
          'inputs': {k: stat(v) for k, v in sorted(inputs.paths.items()) if v},
          'synthetic': provenance(synthetic_info), 'tracks': provenance(tracks and tracks[2]),
          'merged': merged is not None and merged.settings}


def evaluate_run(config, run, workdir, the_plan, synthetic, synthetic_info, progress=True,
                 synthetic_bounds=None, tracks=None, merged=None, points_dir=None):
  """Fidelity and scaling of the run in `workdir` with `synthetic` rows (a row source;
  `synthetic_bounds`: their track bounds when they are tracks) and, for the
  track curve, `tracks`: (rows, bounds, info) of synthetic tracks; `merged`: an
  index of the references and every synthetic row, built in parts
  (`rfp.index_parts`), for the size that holds them all. Each finished sweep
  point is kept in `points_dir` (if given), where a re-run after an
  interruption finds it (`scaling.FinishedPoints`).

  Returns (results dict, 2-D embedding maps or None).
  """
  eval_cfg, inputs, spec, sizes = config.eval, the_plan.inputs, the_plan.spec, the_plan.sizes
  if synthetic.n < sizes['synthetic'][-1]:
    raise InputError(f'{synthetic_info["folder"]}: {synthetic.n:,} synthetic rows, fewer than '
                     f'the largest size {sizes["synthetic"][-1]:,}; sample more or lower eval.sizes')
  notes = list(the_plan.notes)
  t0 = time.perf_counter()
  fid, maps = fidelity_lib.fidelity(inputs, synthetic, eval_cfg.fidelity_rows, eval_cfg.seed,
                                    progress)
  t1 = time.perf_counter()
  finished = scaling.FinishedPoints(
      points_dir, _identity(eval_cfg, inputs, synthetic_info, tracks, merged))
  curves, sweep_notes = scaling.sweep(inputs, synthetic, sizes, eval_cfg, spec, progress,
                                      synthetic_bounds, tracks and tracks[:2], merged, finished)
  t2 = time.perf_counter()
  notes += sweep_notes
  tail, pool_point = None, next((p for p in curves.get('real', [])
                                 if inputs.real is not None and p['size'] == inputs.real.n), None)
  if pool_point is not None:
    tail = tail_lib.evaluate(inputs, {'synthetic': synthetic, 'synthetic tracks': tracks and tracks[0]},
                             [n for n in sizes['synthetic'] if n >= inputs.real.n],
                             pool_point['hr1']['mean'], eval_cfg.seed, progress)
  t3 = time.perf_counter()
  clamped = sorted({(p['index']['nlist'], p['index']['train_rows'])
                    for c in curves.values() for s in c for p in s['repeats'] if 'index' in p
                    and p['index']['nlist'] < spec.nlist})
  if clamped:
    notes.append(f'nlist lowered from {spec.nlist} for small databases (faiss needs 39 '
                 'training rows per cell): ' + ', '.join(f'{n} cells for {t:,} training rows'
                                                      for n, t in clamped))
  results = {
      'run': {'workdir': str(workdir), 'name': run.get('name'),
              'system': run.get('system', {}).get('name')},
      'system': config.system.name if 'system' in config else run.get('system', {}).get('name'),
      'inputs': {**inputs.paths, 'reference_rows': inputs.reference.n,
                 'real_rows': inputs.real.n if inputs.real is not None else None,
                 'real2': str(inputs.real2.path) if inputs.real2 is not None else None,
                 'queries_evaluated': len(inputs.query_rows), 'dim': inputs.reference.dim,
                 'sequence_queries_evaluated': (len(inputs.sequences.query_rows)
                                                if inputs.sequences is not None else 0)},
      'synthetic': synthetic_info,
      'synthetic_tracks': tracks[2] if tracks else None,
      'settings': {'eval': json.loads(eval_cfg.to_json()), 'sizes': sizes, **retrieval.backend()},
      'fidelity': fid,
      'scaling': curves,
      'table3': table3(curves, fid),
      'verdict': verdict(curves, tail, like_with_like(inputs, synthetic_bounds, tracks)),
      'tail': tail,
      'sequences': sequence_summary(inputs, curves, synthetic_bounds is not None),
      'selection': selection(workdir, (synthetic_info.get('checkpoint') or {}).get('step')),
      'seconds': {**{f'synthetic_{k}': v for k, v in synthetic_info.get('seconds', {}).items()},
                  'fidelity': t1 - t0, 'scaling': t2 - t1, 'tail': t3 - t2},
      'notes': notes,
  }
  return results, maps
