"""The scaling sweep: HR@1 and hardness against the number of distractors.

For each distractor count and repeat, references plus a fresh set of real or
synthetic distractors go into an IVF-PQ index; queries are searched and
re-ranked exactly (`rfp.retrieval`), and the same pass scores every
distractor exactly for hardness (`rfp.evaluation.hardness`). The second real
set gets hardness only: it is the floor the other curves are read against.
"""

import time

import numpy as np
from tqdm import tqdm

from rfp import retrieval, rows as rows_lib
from rfp.errors import InputError
from rfp.evaluation import hardness


def _sizes(values, name):
  try:
    sizes = sorted({int(s) for s in values})
  except (TypeError, ValueError) as e:
    raise InputError(f'{name}={values!r}: expected a list of distractor counts') from e
  if not sizes or sizes[0] < 1:
    raise InputError(f'{name}={values!r}: expected positive distractor counts')
  return sizes


def plan_sizes(eval_cfg, inputs):
  """Distractor counts per curve: {'synthetic', 'real', 'real2'} -> sizes, plus notes.

  `eval.sizes` drives the synthetic curve; the real curve follows it up to the
  pool and ends with the whole pool (a size both curves then run), unless
  `eval.real_sizes` lists its sizes; asking for more than the pool is an error.
  """
  sizes = _sizes(eval_cfg.sizes, 'eval.sizes')
  if eval_cfg.repeats < 1:
    raise InputError(f'eval.repeats={eval_cfg.repeats}: must be at least 1')
  notes = []
  real = []
  if eval_cfg.real_sizes:
    if inputs.real is None:
      raise InputError('eval.real_sizes is set but there is no real distractor pool '
                       '(eval.real_distractors)')
    real = _sizes(eval_cfg.real_sizes, 'eval.real_sizes')
    if real[-1] > inputs.real.n:
      raise InputError(f'eval.real_sizes: {real[-1]:,} real distractors asked for, but '
                       f'{inputs.real.path} holds only {inputs.real.n:,} rows')
  elif inputs.real is not None:
    real = [s for s in sizes if s <= inputs.real.n]
    if len(real) < len(sizes):
      # The whole pool is the largest real point; synthetic runs it too, side by side.
      notes.append(f'real curve ends with the whole pool ({inputs.real.n:,} rows): sizes '
                   f'{", ".join(f"{s:,}" for s in sizes if s > inputs.real.n)} are synthetic only')
      if inputs.real.n not in real:
        real.append(inputs.real.n)
        sizes = sorted(sizes + [inputs.real.n])
  real2 = [s for s in real if inputs.real2 is not None and s <= inputs.real2.n]
  return {'synthetic': sizes, 'real': real, 'real2': real2}, notes


def hit_rates(ids_qk, gt_q, n_refs, tracks=None):
  """Shares of queries whose re-ranked results `ids_qk` find their reference row.

  hr1: right row at rank 1; topk: right row among the candidates; with track
  ids, track1: a row of the right track at rank 1, near1: a row within one
  segment of the right one, same track.
  """
  top1 = ids_qk[:, 0]
  out = {'hr1': float(np.mean(top1 == gt_q)),
         'topk': float(np.mean((ids_qk == gt_q[:, None]).any(1)))}
  if tracks is not None:
    is_ref = (top1 >= 0) & (top1 < n_refs)
    same_track = is_ref & (tracks[np.where(is_ref, top1, 0)] == tracks[gt_q])
    out['track1'] = float(np.mean(same_track))
    out['near1'] = float(np.mean(same_track & (np.abs(top1 - gt_q) <= 1)))
  return out


def retrieval_point(inputs, distractors, spec, rng, bar=None, trained=None):
  """One database (references + `distractors`): hit rates, hardness and index settings.

  `trained` (a `retrieval.Index`) supplies the quantizers instead of training
  on this database.
  """
  n_refs = inputs.reference.n
  db = rows_lib.Stack([inputs.reference, distractors])
  best = hardness.BestScores(inputs.queries_qd)

  def on_chunk(start, x):
    if start + len(x) > n_refs:  # A chunk can straddle references and distractors.
      best.update(x[max(0, n_refs - start):])
    if bar is not None:
      bar.update(len(x))

  t0 = time.perf_counter()
  if bar is not None and trained is None:
    bar.set_postfix_str('training the index')  # The bar stands still meanwhile.
  index = retrieval.build_index(db, spec, rng, on_chunk=on_chunk, trained=trained)
  if bar is not None:
    bar.set_postfix_str('')
  t1 = time.perf_counter()
  ids, _ = retrieval.search(index, inputs.queries_qd, db, spec.k)
  t2 = time.perf_counter()
  out = hit_rates(ids, inputs.ground_truth, n_refs, inputs.tracks)
  out['hard'] = float(np.mean(best.best > inputs.true_scores))
  out['index'] = index.settings
  out['seconds'] = {'build': t1 - t0, 'search': t2 - t1}
  return out


def distractor_sets(kind, source, size, repeats, seed):
  """The `repeats` distractor sets of one size, with a note if they share rows.

  Real (and second-real) sets are random subsets of their pool; at the
  pool's size every repeat is the whole pool. Synthetic rows are independent
  draws, so repeats take disjoint contiguous slices (sequential reads from the
  shards) as long as there are enough rows.
  """
  if kind != 'synthetic':
    salt = {'real': 1, 'real2': 2}[kind]
    note = (f'{kind} repeats at {size:,} are the whole pool: the same rows each time'
            if size >= source.n and repeats > 1 else None)
    return [rows_lib.Subset(source, rows_lib.sample_rows(
        source.n, size, np.random.default_rng([seed, salt, size, r])))
            for r in range(repeats)], note
  if source.n >= repeats * size:
    return [rows_lib.Slice(source, r * size, (r + 1) * size) for r in range(repeats)], None
  step = (source.n - size) / max(repeats - 1, 1)
  starts = [int(round(r * step)) for r in range(repeats)]
  note = (f'synthetic repeats at {size:,} share rows: {source.n:,} rows available, '
          f'{repeats * size:,} needed for disjoint sets')
  return [rows_lib.Slice(source, s, s + size) for s in starts], note


def _summary(points, keys):
  """Mean and sample std over repeats of each metric (std None for one repeat)."""
  out = {}
  for key in keys:
    values = np.array([p[key] for p in points], np.float64)
    out[key] = {'mean': float(values.mean()),
                'std': float(values.std(ddof=1)) if len(values) > 1 else None}
  return out


def sweep(inputs, synthetic, plan, eval_cfg, spec, progress=True):
  """The sweep: one curve per distractor kind, one entry per size."""
  sources = {'real': inputs.real, 'synthetic': synthetic, 'real2': inputs.real2}
  total = sum((inputs.reference.n * (kind != 'real2') + size) * eval_cfg.repeats
              for kind, sizes in plan.items() for size in sizes)
  curves, notes = {}, []
  kind_ids = {'real': 0, 'synthetic': 1, 'real2': 2}
  trained = None
  if eval_cfg.index.shared_training:
    # One codebook for every point, trained on references and real rows when
    # there are any: curves then differ only by their distractors.
    pool = rows_lib.Stack([inputs.reference, inputs.real if inputs.real is not None else synthetic])
    with tqdm(total=1, desc=f'training the shared index on {min(spec.train_rows, pool.n):,} rows',
              bar_format='{desc} ({elapsed})', disable=not progress) as bar:
      trained = retrieval.train_index(pool, spec, np.random.default_rng([eval_cfg.seed, 4]))
      bar.update()
  with tqdm(total=total, unit='row', unit_scale=True, desc='scaling', dynamic_ncols=True,
            disable=not progress, mininterval=0.5) as bar:
    for kind in ('real', 'synthetic', 'real2'):
      curve = []
      for size in plan[kind]:
        sets, note = distractor_sets(kind, sources[kind], size, eval_cfg.repeats, eval_cfg.seed)
        if note:
          notes.append(note)
        points = []
        for r, distractors in enumerate(sets):
          bar.set_description(f'{kind} {size:,} ({r + 1}/{eval_cfg.repeats})')
          if kind == 'real2':
            points.append(hardness.hardness_point(inputs, distractors, bar))
          else:
            rng = np.random.default_rng([eval_cfg.seed, 3, kind_ids[kind], size, r])
            points.append(retrieval_point(inputs, distractors, spec, rng, bar, trained))
        keys = [k for k in points[0] if k not in ('index', 'seconds')]
        # Repeats that share rows are not independent: their std understates the spread.
        curve.append({'size': size, **_summary(points, keys), 'shared_rows': note is not None,
                      'repeats': points})
      curves[kind] = curve
  return curves, notes
