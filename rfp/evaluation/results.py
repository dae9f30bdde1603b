"""One evaluation, end to end: fidelity, the scaling sweep and the results dict.

The results dict is what `rfp.report` writes out (results.json, report.md,
plots). Rates are fractions.
"""

import dataclasses
import json
import time

from rfp import retrieval
from rfp.errors import InputError
from rfp.evaluation import fidelity as fidelity_lib, inputs as inputs_lib, scaling

# Anchors of the paper's Table 3; used when those sizes were run.
TABLE3_SIZES = (1_000_000, 100_000_000)


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
  sizes: dict  # {'synthetic', 'real', 'real2'} -> distractor counts.
  notes: tuple
  synthetic_rows: int  # Enough for disjoint repeats at the largest size.
  synthetic_minimum: int  # The fewest that will do (repeats then share rows).


def plan(config, run, nafp=None):
  """Checks every input and setting of `config.eval` against the run (its config
  dict `run`); any problem is one `InputError`."""
  eval_cfg = config.eval
  inputs = inputs_lib.open_inputs(eval_cfg, run, nafp)
  spec = retrieval.IndexSpec.from_config(eval_cfg.index)
  spec.subquantizers(inputs.reference.dim)
  sizes, notes = scaling.plan_sizes(eval_cfg, inputs)
  if eval_cfg.fidelity_rows < 1:
    raise InputError(f'eval.fidelity_rows={eval_cfg.fidelity_rows}: must be at least 1')
  largest = sizes['synthetic'][-1]
  return Plan(inputs, spec, sizes, tuple(inputs.notes) + tuple(notes),
              max(eval_cfg.repeats * largest, eval_cfg.fidelity_rows),
              max(largest, eval_cfg.fidelity_rows))


def evaluate_run(config, run, workdir, the_plan, synthetic, synthetic_info, progress=True):
  """Fidelity and scaling of the run in `workdir` with `synthetic` rows (a row source).

  Returns (results dict, 2-D embedding maps or None).
  """
  eval_cfg, inputs, spec, sizes = config.eval, the_plan.inputs, the_plan.spec, the_plan.sizes
  if synthetic.n < sizes['synthetic'][-1]:
    raise InputError(f'{synthetic_info["folder"]}: {synthetic.n:,} synthetic rows, fewer than '
                     f'the largest size {sizes["synthetic"][-1]:,}; sample more or lower eval.sizes')
  notes = list(the_plan.notes)
  t0 = time.perf_counter()
  fid, maps = fidelity_lib.fidelity(inputs, synthetic, eval_cfg.fidelity_rows, eval_cfg.seed)
  t1 = time.perf_counter()
  curves, sweep_notes = scaling.sweep(inputs, synthetic, sizes, eval_cfg, spec, progress)
  t2 = time.perf_counter()
  notes += sweep_notes
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
                 'queries_evaluated': len(inputs.query_rows), 'dim': inputs.reference.dim},
      'synthetic': synthetic_info,
      'settings': {'eval': json.loads(eval_cfg.to_json()), 'sizes': sizes, **retrieval.backend()},
      'fidelity': fid,
      'scaling': curves,
      'table3': table3(curves, fid),
      'seconds': {'fidelity': t1 - t0, 'scaling': t2 - t1},
      'notes': notes,
  }
  return results, maps
