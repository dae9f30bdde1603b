"""The scaling sweep: HR@1 and hardness against the number of distractors.

For each distractor count and repeat, references plus a fresh set of real or
synthetic distractors go into an IVF-PQ index; queries are searched and
re-ranked exactly (`rfp.retrieval`), and the same pass scores every
distractor exactly for hardness (`rfp.evaluation.hardness`). The second real
set gets hardness only: it is the floor the other curves are read against.

A database is a file of tracks, so real sets are whole tracks (the last one
cut short). At the sequence sizes, the same index also answers the
multi-segment queries at each length (`rfp.evaluation.sequences`), with
their hardness scored exactly over every start of the set's tracks.
"""

import hashlib
import json
import pathlib
import shutil
import time

import numpy as np
from tqdm import tqdm

from rfp import bounds as bounds_lib, files, index_parts, retrieval, rows as rows_lib
from rfp.errors import InputError
from rfp.evaluation import hardness, sequences, stats
from rfp.evaluation.rates import SEQUENCE_TOPS, hit_rates, sequence_hit_rates


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
  A second real set smaller than the pool adds its own size to both curves.
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
  if (not eval_cfg.real_sizes and inputs.real2 is not None and real
      and real[0] < inputs.real2.n < real[-1] and inputs.real2.n not in real):
    # The verdict is read where the second real set ends (rfp.evaluation.results).
    real = sorted(real + [inputs.real2.n])
    sizes = sorted(set(sizes) | {inputs.real2.n})
  real2 = [s for s in real if inputs.real2 is not None and s <= inputs.real2.n]
  seq = []
  if inputs.sequences is not None:
    seq = (_sizes(eval_cfg.sequence_sizes, 'eval.sequence_sizes') if eval_cfg.sequence_sizes
           else list(real))
    sizes = sorted(set(sizes) | set(seq))
  tracks = list(seq) if eval_cfg.tracks else []
  return {'synthetic': sizes, 'real': real, 'real2': real2, 'sequence': seq,
          'tracks': tracks}, notes


def sequence_hardness(inputs, distractors, bounds):
  """{length: {'hard', 'hard_q'}}: share of multi-segment queries whose best
  start among `distractors` (tracks `bounds`) outscores their true run of rows,
  exactly, and which queries (`stats.pack`), for paired differences."""
  seq = inputs.sequences
  best = sequences.exact_best_starts(seq.q_qld, distractors, bounds, seq.lengths)
  hard = {n: best[n][0] > seq.true_scores[n] for n in seq.lengths}
  return {str(n): {'hard': float(np.mean(hard[n])), 'hard_q': stats.pack(hard[n])}
          for n in seq.lengths}


def _sequence_point(inputs, index, db, distractors, bounds, k):
  """Hit rates and hardness of the multi-segment queries at each length."""
  seq = inputs.sequences
  out = sequence_hardness(inputs, distractors, bounds)
  db_bounds = bounds_lib.stack_bounds([inputs.bounds['reference'], bounds])
  # Shorter queries are prefixes of the longest: each segment is searched once.
  ids_qlk = sequences.segment_ids(index, seq.q_qld[:, :max(seq.lengths)], k)
  for n in seq.lengths:
    starts, _ = sequences.search_sequences(index, seq.q_qld[:, :n], db, db_bounds, k,
                                           top=max(SEQUENCE_TOPS), ids_qlk=ids_qlk)
    out[str(n)].update(sequence_hit_rates(starts, seq.ground_truth, inputs.tracks,
                                          inputs.reference.n))
  return out


def _scorer(best, n_refs, bar):
  """`on_chunk(start, x)` for a pass over a database's chunks (ids from 0 at
  the references): the distractors' rows go to `best` (`hardness.BestScores`)."""

  def on_chunk(start, x):
    if start + len(x) > n_refs:  # A chunk can straddle references and distractors.
      best.update(x[max(0, n_refs - start):])
    if bar is not None:
      bar.update(len(x))

  return on_chunk


def index_in_parts(folder, shards, parts, inputs, trained, spec, rng, bar=None):
  """(index, best scores `[q]`) of the references + `shards`, built in this
  process in `parts` parts (`rfp.index_parts`), each written to `folder` with
  its distractors' exact best scores as soon as it is finished: an interrupted
  run redoes at most one part. The parts are then merged on disk and deleted;
  the merged index is searched through its memory-mapped lists."""
  folder = pathlib.Path(folder)
  index_parts.train(folder, inputs.reference, shards, spec, rng, trained=trained)
  rows = [inputs.reference.n] + [s.n for s in shards]
  best_q = np.full(len(inputs.queries_qd), -np.inf, np.float32)
  for p in range(parts):
    path = folder / f'best-{p:05d}-of-{parts:05d}.npy'
    if not path.exists():
      # A part written without its scores (cut off between the two) is redone.
      index_parts.part_path(folder, p, parts).unlink(missing_ok=True)
      scores = hardness.BestScores(inputs.queries_qd)
      index_parts.add_part(folder, inputs.reference, shards, p, parts,
                           on_chunk=_scorer(scores, inputs.reference.n, bar))
      with files.atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.save(f, scores.best)
    elif bar is not None:
      bar.update(sum(rows[j] for j in index_parts.part_pieces(len(shards), p, parts)))
    np.fmax(best_q, np.load(path), out=best_q)
  if bar is not None:
    bar.set_postfix_str(f'merging {parts} index parts')
  index_parts.merge(folder, parts)  # Keeps a merged index already written.
  for p in range(parts):
    index_parts.part_path(folder, p, parts).unlink(missing_ok=True)
  return index_parts.MergedIndex(folder), best_q


def retrieval_point(inputs, distractors, spec, rng, bar=None, trained=None, bounds=None,
                    built=None, in_parts=None):
  """One database (references + `distractors`): hit rates, hardness and index settings.

  `trained` (a `retrieval.Index`) supplies the quantizers instead of training
  on this database; `built` is an index of this very database already
  (`rfp.index_parts`), which is only read; `in_parts` (folder, the
  distractors' shards, part count) builds it with `trained` by
  `index_in_parts`. With the distractors' track `bounds`, the multi-segment
  queries too (`sequences` in the result).
  """
  n_refs = inputs.reference.n
  db = rows_lib.Stack([inputs.reference, distractors])
  best = hardness.BestScores(inputs.queries_qd)
  on_chunk = _scorer(best, n_refs, bar)

  t0 = time.perf_counter()
  if bar is not None and trained is None:
    bar.set_postfix_str('training the index')  # The bar stands still meanwhile.
  if in_parts is not None:
    index, best.best = index_in_parts(*in_parts, inputs, trained, spec, rng, bar)
  elif built is None:
    index = retrieval.build_index(db, spec, rng, on_chunk=on_chunk, trained=trained)
  else:
    index = built
    for start, x in db.chunks():  # The exact hardness pass the build would have made.
      on_chunk(start, x)
  if bar is not None:
    bar.set_postfix_str('')
  t1 = time.perf_counter()
  n_queries = len(inputs.queries_qd)

  def searched(done):
    if bar is not None:
      bar.set_postfix_str(f'searched {done:,}/{n_queries:,} queries' if done < n_queries else '')

  searched(0)
  ids, _ = retrieval.search(index, inputs.queries_qd, db, spec.k, on_batch=searched)
  t2 = time.perf_counter()
  out = hit_rates(ids, inputs.ground_truth, n_refs, inputs.tracks)
  hard_q = best.best > inputs.true_scores
  out['hard'], out['hard_q'] = float(np.mean(hard_q)), stats.pack(hard_q)
  out['index'] = index.settings
  out['seconds'] = {'build': t1 - t0, 'search': t2 - t1}
  if bounds is not None:
    out['sequences'] = _sequence_point(inputs, index, db, distractors, bounds, spec.k)
    out['seconds']['sequences'] = time.perf_counter() - t2
  return out


def whole_tracks(bounds, size, rng):
  """Rows of random whole tracks adding up to `size` (the last track drawn cut
  short), in file order, and their bounds."""
  order = rng.permutation(len(bounds) - 1)
  lengths = np.diff(bounds)[order]
  count = int(np.searchsorted(np.cumsum(lengths), size)) + 1
  keep = lengths[:count].copy()
  keep[-1] -= keep.sum() - size
  by_file = np.argsort(order[:count])
  first, keep = bounds[order[:count]][by_file], keep[by_file]
  rows = np.concatenate([np.arange(a, a + n) for a, n in zip(first, keep)])
  return rows, bounds_lib.track_bounds(np.cumsum(np.concatenate([[0], keep[:-1]])), size)


def distractor_sets(kind, source, size, repeats, seed, bounds=None):
  """The `repeats` distractor sets of one size, each with its track bounds, and a
  note if they share rows.

  Real (and second-real) sets are random whole tracks of their pool (`bounds`),
  or without track ids a run of consecutive rows at a random offset; at the
  pool's size every repeat is the whole pool. Synthetic rows take disjoint
  contiguous slices (sequential reads from the shards) as long as there are
  enough rows; `bounds` are the synthetic tracks', or None for i.i.d. rows,
  which count as one track.
  """
  if kind in ('real', 'real2'):
    salt = {'real': 1, 'real2': 2}[kind]
    note = (f'{kind} repeats at {size:,} are the whole pool: the same rows each time'
            if size >= source.n and repeats > 1 else None)
    sets = []
    for r in range(repeats):
      rng = np.random.default_rng([seed, salt, size, r])
      if bounds is None:
        start = int(rng.integers(0, source.n - size + 1))
        sets.append((rows_lib.Slice(source, start, start + size),
                     bounds_lib.track_bounds([0], size)))
      else:
        rows, set_bounds = whole_tracks(bounds, size, rng)
        sets.append((rows_lib.Subset(source, rows), set_bounds))
    return sets, note
  bounds = bounds_lib.track_bounds([0], source.n) if bounds is None else bounds
  note = None
  if source.n >= repeats * size:
    starts = [r * size for r in range(repeats)]
  else:
    step = (source.n - size) / max(repeats - 1, 1)
    starts = [int(round(r * step)) for r in range(repeats)]
    note = (f'synthetic repeats at {size:,} share rows: {source.n:,} rows available, '
            f'{repeats * size:,} needed for disjoint sets')
  return [(rows_lib.Slice(source, s, s + size), bounds_lib.slice_bounds(bounds, s, s + size))
          for s in starts], note


def _summary(points, n_queries, n_sequence_queries=None):
  """Mean, sample std (None for one repeat) and standard error
  (`stats.standard_error`, over the `n_queries` queries) over repeats of each
  rate; per query length for the multi-segment queries. Per-query flags stay
  with the repeats."""
  out = {}
  for key in points[0]:
    if key in ('index', 'seconds', 'hard_q'):
      continue
    if key == 'sequences':
      out[key] = {n: _summary([p[key][n] for p in points], n_sequence_queries)
                  for n in points[0][key]}
      continue
    values = np.array([p[key] for p in points], np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    out[key] = {'mean': float(values.mean()), 'std': std,
                'se': stats.standard_error(values.mean(), n_queries, std, len(values))}
  return out


KINDS = ('real', 'synthetic', 'tracks', 'real2')  # Curves, in the order they are run.
# What a point holds; a point kept under an older version lacks figures and
# is measured again.
POINT_VERSION = 2


class FinishedPoints:
  """The sweep's finished points on disk, `folder/KIND-SIZE-REPEAT.json`, so
  that an interrupted evaluation resumes after the last point it finished.

  Each file holds the key of what it was measured from (settings, inputs,
  synthetic rows: `identity`, any JSON); a point under another key is
  measured again and overwritten. `folder` None keeps nothing.
  """

  def __init__(self, folder, identity):
    self.folder = folder and pathlib.Path(folder)
    self.key = hashlib.sha256(json.dumps([POINT_VERSION, identity], sort_keys=True,
                                         default=str).encode()
                              ).hexdigest()

  def _path(self, kind, size, r):
    return self.folder / f'{kind}-{size}-{r}.json'

  def get(self, kind, size, r):
    """The point measured under this key, or None."""
    if self.folder is None or not self._path(kind, size, r).exists():
      return None
    try:
      saved = files.read_json(self._path(kind, size, r))
    except ValueError:  # Cut off mid-write by an older version: measure again.
      return None
    return saved.get('point') if isinstance(saved, dict) and saved.get('key') == self.key else None

  def put(self, kind, size, r, point):
    if self.folder is not None:
      self.folder.mkdir(parents=True, exist_ok=True)
      files.write_json(self._path(kind, size, r), {'key': self.key, 'point': point})
      self.drop_index(kind, size, r, keep_own=False)

  def index_dir(self, kind, size, r):
    """Where a point's index is built in parts (`index_in_parts`), under this
    key; folders of another key for the point are deleted (gigabytes each)."""
    self.drop_index(kind, size, r)
    return self.folder / f'{kind}-{size}-{r}-{self.key[:16]}.index'

  def drop_index(self, kind, size, r, keep_own=True):
    for old in self.folder.glob(f'{kind}-{size}-{r}-*.index'):
      if not (keep_own and old.name.endswith(f'-{self.key[:16]}.index')):
        shutil.rmtree(old)


def sweep(inputs, synthetic, plan, eval_cfg, spec, progress=True, synthetic_bounds=None,
          tracks=None, merged=None, finished=None):
  """The sweep: one curve per distractor kind, one entry per size.

  `synthetic_bounds`: the synthetic rows' track bounds (when they are tracks),
  or None for i.i.d. rows; `tracks`: (rows, bounds) of synthetic tracks run at
  `plan['tracks']` sizes beside them; `merged`: an index of the references and
  every synthetic row (`rfp.index_parts`), searched at that size instead of
  building one; `finished` (`FinishedPoints`): points kept from an earlier,
  interrupted run, and where this one keeps its own.
  """
  finished = finished or FinishedPoints(None, None)
  sources = {'real': inputs.real, 'synthetic': synthetic, 'real2': inputs.real2,
             'tracks': tracks[0] if tracks else None}
  set_bounds = {'real': inputs.bounds.get('real'), 'real2': inputs.bounds.get('real2'),
                'synthetic': synthetic_bounds, 'tracks': tracks[1] if tracks else None}
  def rows_read(kind, size):
    # Each database once (real2: its distractors only), plus each distractor
    # set again at sequence sizes: what the progress bar counts per point.
    return inputs.reference.n * (kind != 'real2') + size * (1 + (size in plan['sequence']))

  n_queries = (len(inputs.queries_qd),
               inputs.sequences and len(inputs.sequences.ground_truth))
  total = sum(rows_read(kind, size) * eval_cfg.repeats for kind in KINDS for size in plan[kind])
  curves, notes = {}, []
  kind_ids = {'real': 0, 'synthetic': 1, 'real2': 2, 'tracks': 3}
  trained = None

  def _in_parts(kind, size, r, whole):
    # Every synthetic row, past `eval.index.part_rows`: built in parts that an
    # interrupted run keeps (on disk beside the finished points).
    shards = getattr(synthetic, 'parts', None)
    parts = -(-(inputs.reference.n + size) // eval_cfg.index.part_rows)
    if (kind != 'synthetic' or size != synthetic.n or whole is not None or shards is None
        or parts < 2 or finished.folder is None):
      return None
    return finished.index_dir(kind, size, r), shards, parts

  def train_shared():
    # One codebook for every point, trained on references and real rows when
    # there are any: curves then differ only by their distractors.
    pool = rows_lib.Stack([inputs.reference, inputs.real if inputs.real is not None else synthetic])
    with tqdm(total=1, desc=f'training the shared index on {min(spec.train_rows, pool.n):,} rows',
              bar_format='{desc} ({elapsed})', disable=not progress) as bar:
      index = retrieval.train_index(pool, spec, np.random.default_rng([eval_cfg.seed, 4]))
      bar.update()
    return index

  with tqdm(total=total, unit='row', unit_scale=True, desc='scaling', dynamic_ncols=True,
            disable=not progress, mininterval=0.5) as bar:
    for kind in KINDS:
      if kind == 'tracks' and not plan[kind]:  # An extra curve: absent, not empty.
        continue
      curve = []
      for size in plan[kind]:
        sets, note = distractor_sets(kind, sources[kind], size, eval_cfg.repeats, eval_cfg.seed,
                                     set_bounds[kind])
        if note:
          notes.append(note)
        points = []
        for r, (distractors, bounds) in enumerate(sets):
          bar.set_description(f'{kind} {size:,} ({r + 1}/{eval_cfg.repeats})')
          bounds = bounds if size in plan['sequence'] else None
          point = finished.get(kind, size, r)
          if point is not None:
            bar.update(rows_read(kind, size))
            points.append(point)
            continue
          if kind == 'real2':
            point = hardness.hardness_point(inputs, distractors, bar)
            if bounds is not None:
              point['sequences'] = sequence_hardness(inputs, distractors, bounds)
          else:
            if eval_cfg.index.shared_training and trained is None:
              trained = train_shared()
            rng = np.random.default_rng([eval_cfg.seed, 3, kind_ids[kind], size, r])
            whole = merged if kind == 'synthetic' and size == synthetic.n else None
            point = retrieval_point(inputs, distractors, spec, rng, bar, trained, bounds, whole,
                                    _in_parts(kind, size, r, whole))
          if bounds is not None:
            bar.update(size)
          finished.put(kind, size, r, point)
          points.append(point)
        # Repeats that share rows are not independent: their std understates the spread.
        curve.append({'size': size, **_summary(points, *n_queries), 'shared_rows': note is not None,
                      'repeats': points})
      curves[kind] = curve
  return curves, notes
