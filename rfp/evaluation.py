"""Evaluating a trained run: how real its samples look, and how hard they are as distractors.

Two questions (paper, Sec. 4), each answered against "as good as real":

* Fidelity: FD, JS and precision/recall/density/coverage of synthetic rows
  against real ones, beside the same figures for Gaussian noise and for a
  second, disjoint real set (the floor a perfect model would reach).
* Scaling: for each distractor count and repeat, references plus a fresh set
  of real or synthetic distractors go into an IVF-PQ index; queries are
  searched and re-ranked exactly (`rfp.retrieval`). HR@1 is reported with the
  distractor hardness rate: how often the best distractor outscores the
  query's true match, which is what makes a distractor a distractor.

Every input is opened read-only. `evaluate` returns the results dict that
`rfp.report` writes out.
"""

import dataclasses
import json
import pathlib
import time

import numpy as np
from tqdm import tqdm

from rfp import checkpoint, data, metrics, retrieval
from rfp.errors import InputError

# Eval fields that older config files (and runs' config.json) may lack.
NAFP_FILES = {'reference': 'db.mm', 'queries': 'query.mm', 'real_distractors': 'dummy_db.mm'}
SAMPLE_SHARD_ROWS = 1 << 20
SCORE_BLOCK = 8192  # Distractor rows scored against all queries at once.
# Anchors of the paper's Table 3; used when those sizes were run.
TABLE3_SIZES = (1_000_000, 100_000_000)


@dataclasses.dataclass(frozen=True)
class Inputs:
  """The validated evaluation data. Row sources stay on disk."""
  reference: data.Embeddings
  queries_qd: np.ndarray  # The evaluated queries, float32.
  query_rows: np.ndarray  # Their rows in the query file.
  ground_truth: np.ndarray  # [q] reference row of each evaluated query.
  true_scores: np.ndarray  # [q] inner product of each query with its true match.
  tracks: np.ndarray | None  # [n_reference] track id of each reference row.
  real: data.Embeddings | None  # Real distractor pool.
  real2: data.Embeddings | None  # A second real set, disjoint from the pool (floors).
  paths: dict
  notes: tuple


def _resolve_paths(cfg, nafp):
  """Input paths from the config, or from a NAFP-style folder."""
  folder = nafp or (cfg.reference if cfg.reference and pathlib.Path(cfg.reference).is_dir()
                    else None)
  if folder is None:
    return {k: cfg[k] for k in ('reference', 'reference_tracks', 'queries', 'ground_truth',
                                'real_distractors')}
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise InputError(f'{folder}: NAFP folder not found')
  for key in ('reference', 'queries'):
    if not (folder / NAFP_FILES[key]).is_file():
      raise InputError(f'{folder}: no {NAFP_FILES[key]}; a NAFP-style folder holds db.mm, '
                       'query.mm and dummy_db.mm with their *_shape.npy files')
  dummy = folder / NAFP_FILES['real_distractors']
  return {'reference': str(folder / NAFP_FILES['reference']), 'reference_tracks': None,
          'queries': str(folder / NAFP_FILES['queries']), 'ground_truth': None,
          'real_distractors': str(dummy) if dummy.is_file() else None, 'nafp': str(folder)}


def _open_like(path, reference, what):
  emb = data.open_embeddings(path)
  if emb.dim != reference.dim:
    raise InputError(f'{emb.path}: {what} have dimension {emb.dim} but the references in '
                     f'{reference.path} have {reference.dim}')
  return emb


def _int_vector(path, length, length_of, why):
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(f'{path}: file not found; {why}')
  try:
    a = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise InputError(f'{path}: cannot read ({e})') from e
  if a.ndim == 2 and a.shape[1] == 1:
    a = a[:, 0]
  if a.ndim != 1 or a.dtype.kind not in 'iu':
    raise InputError(f'{path}: expected a 1-D integer array, got {a.dtype} {a.shape}')
  if len(a) != length:
    raise InputError(f'{path}: has {len(a)} entries but {length_of} has {length} rows')
  return a.astype(np.int64)


def _check_finite(x_nd, path, rows):
  bad = ~np.isfinite(x_nd).all(1)
  if bad.any():
    raise InputError(f'{path}: row {rows[np.argmax(bad)]} holds NaN or Inf')


def _same_file(a, b):
  return a is not None and b is not None and pathlib.Path(a).resolve() == pathlib.Path(b).resolve()


def open_inputs(cfg, run_config, nafp=None):
  """Opens and checks every evaluation input; any problem is one `InputError`.

  `cfg` is the `eval` config section; `run_config` the run's config dict (its
  model dimension must match, and its training file, when disjoint from the
  distractor pool and the references, serves as the second real set).
  """
  paths = _resolve_paths(cfg, nafp)
  notes = []
  if not paths['reference']:
    raise InputError('eval.reference is not set')
  reference = data.open_embeddings(paths['reference'])
  if run_config['model']['dim'] != reference.dim:
    raise InputError(f'{reference.path}: dimension {reference.dim}, but the run models '
                     f'{run_config["model"]["dim"]}-d embeddings')
  if not paths['queries']:
    raise InputError('eval.queries is not set')
  queries = _open_like(paths['queries'], reference, 'queries')

  if 'nafp' in paths:
    if queries.n > reference.n:
      raise InputError(f'{queries.path}: {queries.n} queries but only {reference.n} rows in '
                       f'{reference.path}; NAFP pairs query i with db row i')
    ground_truth = np.arange(queries.n)
    paths['ground_truth'] = 'query i is db row i (NAFP layout)'
  else:
    if not paths['ground_truth']:
      raise InputError('eval.ground_truth is not set: queries need ground truth (the '
                       'reference row each query was cut from)')
    ground_truth = _int_vector(paths['ground_truth'], queries.n, queries.path,
                               'queries need ground truth (the reference row of each query)')
    bad = np.flatnonzero((ground_truth < 0) | (ground_truth >= reference.n))
    if len(bad):
      raise InputError(f'{paths["ground_truth"]}: entry {bad[0]} points at reference row '
                       f'{ground_truth[bad[0]]}, outside the {reference.n} rows of '
                       f'{reference.path} ({len(bad)} such entries)')

  tracks = None
  if paths['reference_tracks']:
    tracks = _int_vector(paths['reference_tracks'], reference.n, reference.path,
                         'set eval.reference_tracks=None to evaluate without track ids')

  real = None
  if paths['real_distractors']:
    real = _open_like(paths['real_distractors'], reference, 'real distractors')
    if _same_file(real.path, reference.path):
      raise InputError(f'{real.path}: is also the reference file; distractors must be other rows')
  else:
    notes.append('no real distractor pool: synthetic curve only')

  real2 = None
  train_path = run_config.get('data', {}).get('train')
  if train_path and pathlib.Path(train_path).is_file():
    if _same_file(train_path, paths['real_distractors']) or _same_file(train_path, reference.path):
      notes.append(f'the flow training file {train_path} is not disjoint from the evaluation '
                   'data: the real-vs-real floor uses two halves of the real rows')
    else:
      real2 = _open_like(train_path, reference, 'flow training rows')
  else:
    notes.append('the flow training file is not available: the real-vs-real floor uses two '
                 'halves of the real rows')

  rng = np.random.default_rng([cfg.seed, 0])
  if cfg.num_queries < 1:
    raise InputError(f'eval.num_queries={cfg.num_queries}: must be at least 1')
  query_rows = retrieval.sample_rows(queries.n, cfg.num_queries, rng)
  queries_qd = queries.take(query_rows)
  _check_finite(queries_qd, queries.path, query_rows)
  for start, x in reference.chunks():
    _check_finite(x, reference.path, np.arange(start, start + len(x)))
  gt = ground_truth[query_rows]
  true_scores = np.einsum('qd,qd->q', queries_qd, reference.take(gt))
  return Inputs(reference, queries_qd, query_rows, gt, true_scores, tracks, real, real2,
                {k: str(v) if v is not None else None for k, v in paths.items()}, tuple(notes))


def _sizes(values, name):
  try:
    sizes = sorted({int(s) for s in values})
  except (TypeError, ValueError) as e:
    raise InputError(f'{name}={values!r}: expected a list of distractor counts') from e
  if not sizes or sizes[0] < 1:
    raise InputError(f'{name}={values!r}: expected positive distractor counts')
  return sizes


def plan_sizes(cfg, inputs):
  """Distractor counts per curve: {'synthetic', 'real', 'real2'} -> sizes, plus notes.

  `eval.sizes` drives the synthetic curve; the real curve follows it up to the
  pool and ends with the whole pool (a size both curves then run), unless
  `eval.real_sizes` lists its sizes; asking for more than the pool is an error.
  """
  sizes = _sizes(cfg.sizes, 'eval.sizes')
  if cfg.repeats < 1:
    raise InputError(f'eval.repeats={cfg.repeats}: must be at least 1')
  notes = []
  real = []
  if cfg.real_sizes:
    if inputs.real is None:
      raise InputError('eval.real_sizes is set but there is no real distractor pool '
                       '(eval.real_distractors)')
    real = _sizes(cfg.real_sizes, 'eval.real_sizes')
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


def _sample_folder(workdir, needed, minimum, seed):
  """(folder, shards, manifest): a complete sample folder of the run's best
  checkpoint with at least `minimum` rows, opened (e.g. one written by
  `sample.py`; repeats then share rows where it holds fewer than `needed`),
  else the folder to sample `needed` rows into (resuming if it was cut off)
  with shards and manifest None."""
  from rfp import shards  # pylint: disable=g-import-not-at-top  (imports JAX)
  workdir = pathlib.Path(workdir)
  step = checkpoint.managers(workdir)[1].latest_step()
  default = workdir / 'samples'
  for folder in [default] + sorted(workdir.glob('samples-*')):
    manifest = _manifest(folder)
    if (manifest and manifest.get('n', 0) >= minimum
        and manifest.get('checkpoint', {}).get('step') == step):
      try:
        return folder, shards.open_samples(folder, manifest), manifest
      except InputError:  # Cut off: resumed below if it is the right size.
        pass
  manifest = _manifest(default)
  if manifest is None or (manifest.get('n'), manifest.get('seed'),
                          manifest.get('checkpoint', {}).get('step')) == (needed, seed, step):
    return default, None, None
  return workdir / f'samples-{step}-{needed}-{seed}', None, None


def _manifest(folder):
  """A sample folder's manifest, or None where it has none that reads."""
  from rfp import shards  # pylint: disable=g-import-not-at-top  (imports JAX)
  try:
    return shards.read_manifest(folder)
  except InputError:
    return None


def open_synthetic(cfg, workdir, dim, needed, minimum, progress=True):
  """The synthetic rows as one row source, sampling them first if need be.

  `eval.synthetic` names a folder of shards; otherwise `needed` rows come
  from the run's best checkpoint, sampled into WORKDIR/samples unless a
  complete folder of at least `minimum` rows is already there.
  Returns (rows, info dict).
  """
  from rfp import shards  # pylint: disable=g-import-not-at-top  (imports JAX)
  sampled_now = False
  if cfg.synthetic:
    folder, arrays = pathlib.Path(cfg.synthetic), None
    if not folder.is_dir():
      raise InputError(f'{folder}: synthetic shard folder (eval.synthetic) not found')
  else:
    folder, arrays, manifest = _sample_folder(workdir, needed, minimum, cfg.seed)
    if arrays is None:
      shards.write_samples(workdir, folder, needed, -(-needed // SAMPLE_SHARD_ROWS),
                           seed=cfg.seed, progress=progress)
      sampled_now = True
  if arrays is None:
    manifest = shards.read_manifest(folder)
    arrays = shards.open_samples(folder, manifest)
  rows = retrieval.Stack([shard_rows(a) for a in arrays])
  if rows.dim != dim:
    raise InputError(f'{folder}: synthetic rows have dimension {rows.dim}, the references {dim}')
  return rows, {'folder': str(folder), 'rows': rows.n, 'sampled_now': sampled_now,
                **{k: manifest.get(k) for k in ('seed', 'solver', 'steps', 'dtype', 'sphere',
                                                'checkpoint')}}


def shard_rows(shard):
  """A shard (a memmap from `shards.open_samples`) as a row source that streams
  with plain file reads, not its memory map: a pass over 100M rows then leaves
  no mapped pages resident, only one chunk."""
  return data.Embeddings(pathlib.Path(shard.filename), shard.shape, shard.dtype, shard.offset)


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


class BestScores:
  """Running max inner product of each query over streamed distractor rows."""

  def __init__(self, q_qd):
    self.q_qd = q_qd
    self.best = np.full(len(q_qd), -np.inf, np.float32)

  def update(self, x_nd):
    for i in range(0, len(x_nd), SCORE_BLOCK):
      scores = self.q_qd @ x_nd[i:i + SCORE_BLOCK].T
      np.fmax(self.best, scores.max(1), out=self.best)  # fmax: a NaN row never wins.


def retrieval_point(inputs, distractors, spec, rng, bar=None, trained=None):
  """One database (references + `distractors`): hit rates, hardness and index settings.

  `trained` (a `retrieval.Index`) supplies the quantizers instead of training
  on this database.
  """
  n_refs = inputs.reference.n
  db = retrieval.Stack([inputs.reference, distractors])
  best = BestScores(inputs.queries_qd)

  def on_chunk(start, x):
    if start + len(x) > n_refs:  # A chunk can straddle references and distractors.
      best.update(x[max(0, n_refs - start):])
    if bar is not None:
      bar.update(len(x))

  t0 = time.perf_counter()
  index = retrieval.build_index(db, spec, rng, on_chunk=on_chunk, trained=trained)
  t1 = time.perf_counter()
  ids, _ = retrieval.search(index, inputs.queries_qd, db, spec.k)
  t2 = time.perf_counter()
  out = hit_rates(ids, inputs.ground_truth, n_refs, inputs.tracks)
  out['hard'] = float(np.mean(best.best > inputs.true_scores))
  out['index'] = index.settings
  out['seconds'] = {'build': t1 - t0, 'search': t2 - t1}
  return out


def hardness_point(inputs, distractors, bar=None):
  """Share of queries whose best distractor outscores their true match (exact)."""
  best = BestScores(inputs.queries_qd)
  for _, x in distractors.chunks():
    best.update(x)
    if bar is not None:
      bar.update(len(x))
  return {'hard': float(np.mean(best.best > inputs.true_scores))}


def distractor_sets(kind, source, size, repeats, seed):
  """The `repeats` distractor sets of one size, with a note if they overlap.

  Real (and second-real) sets are random subsets of their pool. Synthetic
  rows are independent draws, so repeats take disjoint contiguous slices
  (sequential reads from the shards) as long as there are enough rows.
  """
  if kind != 'synthetic':
    salt = {'real': 1, 'real2': 2}[kind]
    return [retrieval.Subset(source, retrieval.sample_rows(
        source.n, size, np.random.default_rng([seed, salt, size, r]))) for r in range(repeats)], None
  if source.n >= repeats * size:
    return [retrieval.Slice(source, r * size, (r + 1) * size) for r in range(repeats)], None
  step = (source.n - size) / max(repeats - 1, 1)
  starts = [int(round(r * step)) for r in range(repeats)]
  note = (f'synthetic repeats at {size:,} share rows: {source.n:,} rows available, '
          f'{repeats * size:,} needed for disjoint sets')
  return [retrieval.Slice(source, s, s + size) for s in starts], note


def _summary(points, keys):
  """Mean and sample std over repeats of each metric."""
  out = {}
  for key in keys:
    values = np.array([p[key] for p in points], np.float64)
    out[key] = {'mean': float(values.mean()),
                'std': float(values.std(ddof=1)) if len(values) > 1 else 0.0}
  return out


def scaling(inputs, synthetic, plan, cfg, spec, progress=True):
  """The sweep: one curve per distractor kind, one entry per size."""
  sources = {'real': inputs.real, 'synthetic': synthetic, 'real2': inputs.real2}
  total = sum((inputs.reference.n * (kind != 'real2') + size) * cfg.repeats
              for kind, sizes in plan.items() for size in sizes)
  curves, notes = {}, []
  kind_ids = {'real': 0, 'synthetic': 1, 'real2': 2}
  trained = None
  if cfg.index.shared_training:
    # One codebook for every point, trained on references and real rows when
    # there are any: curves then differ only by their distractors.
    pool = retrieval.Stack([inputs.reference, inputs.real if inputs.real is not None else synthetic])
    trained = retrieval.train_index(pool, spec, np.random.default_rng([cfg.seed, 4]))
  with tqdm(total=total, unit='row', unit_scale=True, desc='scaling', dynamic_ncols=True,
            disable=not progress, mininterval=0.5) as bar:
    for kind in ('real', 'synthetic', 'real2'):
      curve = []
      for size in plan[kind]:
        sets, note = distractor_sets(kind, sources[kind], size, cfg.repeats, cfg.seed)
        if note:
          notes.append(note)
        points = []
        for r, distractors in enumerate(sets):
          bar.set_description(f'{kind} {size:,} ({r + 1}/{cfg.repeats})')
          if kind == 'real2':
            points.append(hardness_point(inputs, distractors, bar))
          else:
            rng = np.random.default_rng([cfg.seed, 3, kind_ids[kind], size, r])
            points.append(retrieval_point(inputs, distractors, spec, rng, bar, trained))
        keys = [k for k in points[0] if k not in ('index', 'seconds')]
        curve.append({'size': size, **_summary(points, keys), 'repeats': points})
      curves[kind] = curve
  return curves, notes


def fidelity(inputs, synthetic, rows, seed):
  """Fidelity figures and the 2-D maps for `embedding.png`.

  Sets of `rows` rows each: R (real pool, else references), R2 (the second
  real set, else a disjoint half of R's source), S (synthetic), G (N(0, I),
  the flow's noise, as in the paper) and Gm (a Gaussian with R's mean and
  covariance: FD cannot tell it from R). Comparisons read "X || reference set".
  """
  rng = np.random.default_rng([seed, 10])
  source = inputs.real if inputs.real is not None else inputs.reference
  if inputs.real2 is not None:
    n = min(rows, synthetic.n, source.n, inputs.real2.n)
    r = source.take(retrieval.sample_rows(source.n, n, rng))
    r2 = inputs.real2.take(retrieval.sample_rows(inputs.real2.n, n, rng))
    r2_name = str(inputs.real2.path)
  else:
    n = min(rows, synthetic.n, source.n // 2)
    picked = rng.permutation(source.n)[:2 * n]
    r, r2 = source.take(np.sort(picked[:n])), source.take(np.sort(picked[n:]))
    r2_name = f'other rows of {source.path}'
  dim = source.dim
  if n <= min(metrics.PCA_DIMS, dim) + 1:
    return {'skipped': f'only {n} rows per set; the KDEs need more'}, None
  s = synthetic.take(retrieval.sample_rows(synthetic.n, n, rng))
  g = rng.standard_normal((n, dim)).astype(np.float32)
  axes = metrics.principal_axes(r)
  stats = {'r': metrics.set_stats(r, axes)}
  gm = rng.multivariate_normal(stats['r'].mean, stats['r'].cov, size=n, method='eigh').astype(np.float32)
  stats.update({name: metrics.set_stats(x, axes)
                for name, x in (('s', s), ('g', g), ('gm', gm), ('r2', r2))})
  pairs = {'synthetic_vs_real': ('s', 'r'), 'synthetic_vs_gaussian': ('s', 'g'),
           'gaussian_vs_real': ('g', 'r'), 'matched_gaussian_vs_real': ('gm', 'r'),
           'real2_vs_real': ('r2', 'r')}
  # The KDE densities of each comparison are most of the time: the bar counts those.
  figures = {name: metrics.fidelity(stats[x], stats[ref], seed=seed)
             for name, (x, ref) in tqdm(pairs.items(), desc='fidelity', leave=False)}
  plane = (axes[0], axes[1][:2])
  maps = {name: metrics.project(x, plane) for name, x in
          (('real', r), ('synthetic', s), ('matched Gaussian', gm), ('N(0, I)', g))}
  return {'rows': n, 'pca_dims': int(axes[1].shape[0]), 'prdc_k': metrics.PRDC_K,
          'real': str(source.path), 'real2': r2_name, 'pairs': figures}, maps


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


def evaluate(config, workdir, nafp=None, progress=True):
  """Fidelity and scaling of the run in `workdir` on `config.eval`'s data.

  Returns (results dict, 2-D embedding maps or None). Inputs are checked
  before anything is sampled or indexed.
  """
  cfg = config.eval
  run = checkpoint.read_config(workdir)
  inputs = open_inputs(cfg, run, nafp)
  spec = retrieval.IndexSpec.from_config(cfg.index)
  spec.subquantizers(inputs.reference.dim)
  plan, notes = plan_sizes(cfg, inputs)
  notes = list(inputs.notes) + notes
  if cfg.fidelity_rows < 1:
    raise InputError(f'eval.fidelity_rows={cfg.fidelity_rows}: must be at least 1')
  needed = max(cfg.repeats * plan['synthetic'][-1], cfg.fidelity_rows)
  minimum = max(plan['synthetic'][-1], cfg.fidelity_rows)
  synthetic, synthetic_info = open_synthetic(cfg, workdir, inputs.reference.dim, needed, minimum,
                                             progress)
  if synthetic.n < plan['synthetic'][-1]:
    raise InputError(f'{synthetic_info["folder"]}: {synthetic.n:,} synthetic rows, fewer than '
                     f'the largest size {plan["synthetic"][-1]:,}; sample more or lower eval.sizes')

  t0 = time.perf_counter()
  fid, maps = fidelity(inputs, synthetic, cfg.fidelity_rows, cfg.seed)
  t1 = time.perf_counter()
  curves, sweep_notes = scaling(inputs, synthetic, plan, cfg, spec, progress)
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
      'settings': {'eval': json.loads(cfg.to_json()), 'sizes': plan, **retrieval.backend()},
      'fidelity': fid,
      'scaling': curves,
      'table3': table3(curves, fid),
      'seconds': {'fidelity': t1 - t0, 'scaling': t2 - t1},
      'notes': notes,
  }
  return results, maps
