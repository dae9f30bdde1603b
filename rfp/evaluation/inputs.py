"""Evaluation inputs: the files, checked once, before anything is sampled or indexed.

References, queries and their ground truth (the reference row each query was
cut from), optional track ids, the real distractor pool and a second real set
(the run's training file when it is disjoint: the real-vs-real floor), and
multi-segment queries (`Sequences`). Files come from `eval.*` paths or from a
NAFP-style folder. Every file is opened read-only; any problem is one
`InputError`.

Each row file is a file of tracks (every system stores a track's windows
consecutively); its track bounds (`rfp.evaluation.sequences`) come from its
track ids, or, without them, the whole file counts as one track.
"""

import dataclasses
import pathlib

import numpy as np

from rfp import bounds as bounds_lib, data, layouts, rows as rows_lib
from rfp.errors import InputError, check_positive_int
from rfp.evaluation import sequences as sequences_lib

NAFP_FILES = {'reference': 'db.mm', 'queries': 'query.mm', 'real_distractors': 'dummy_db.mm'}


@dataclasses.dataclass(frozen=True)
class Sequences:
  """Multi-segment queries, evaluated at each of `lengths` segments (their prefixes)."""
  q_qld: np.ndarray  # [q, longest length, dim] float32.
  query_rows: np.ndarray  # Their ids among the query starts (NAFP: rows of the query file).
  ground_truth: np.ndarray  # [q] reference row of each query's first segment.
  lengths: tuple
  true_scores: dict  # {length: [q] mean score of the query with its true run of rows}


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
  sequences: Sequences | None
  # {'reference', 'real', 'real2'} -> track bounds, None where there are no track ids.
  bounds: dict
  paths: dict
  notes: tuple


def _resolve_paths(eval_cfg):
  """Input paths from the config, or from a NAFP-style folder (`eval.reference`
  a folder, as `--nafp DIR` sets it)."""
  folder = (eval_cfg.reference if eval_cfg.reference and pathlib.Path(eval_cfg.reference).is_dir()
            else None)
  if folder is None:
    return {k: eval_cfg[k] for k in ('reference', 'reference_tracks', 'queries', 'ground_truth',
                                     'real_distractors', 'real_distractor_tracks',
                                     'sequence_queries', 'sequence_ground_truth')}
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
          'real_distractors': str(dummy) if dummy.is_file() else None,
          'real_distractor_tracks': None, 'sequence_queries': None, 'sequence_ground_truth': None,
          'nafp': str(folder)}


def _open_like(path, reference, what):
  emb = data.open_embeddings(path)
  if emb.dim != reference.dim:
    raise InputError(f'{emb.path}: {what} have dimension {emb.dim} but the references in '
                     f'{reference.path} have {reference.dim}')
  return emb


def _bounds(path, emb, key):
  """Track bounds of a row file from its track file `path` (resolved, setting `key`), or None."""
  if not path:
    return None
  return bounds_lib.bounds_from_ids(
      data.track_ids(path, emb, f'set {key}=None to read {emb.path} as one track'))


def _tracks_file(setting, emb_path, key):
  """The track file of a row file under setting `key` (rfp.data.resolve_tracks)."""
  return data.resolve_tracks(setting, emb_path, key, f'{pathlib.Path(emb_path).name} is read as '
                             'one track')


def _lengths(eval_cfg):
  try:
    lengths = sorted({int(n) for n in eval_cfg.query_lengths})
  except (TypeError, ValueError) as e:
    raise InputError(f'eval.query_lengths={eval_cfg.query_lengths!r}: expected a list of '
                     'segment counts') from e
  if lengths and lengths[0] < 1:
    raise InputError(f'eval.query_lengths={eval_cfg.query_lengths!r}: expected positive counts')
  return lengths


@dataclasses.dataclass(frozen=True)
class _Recordings:
  """Multi-segment query recordings, read when needed: `segments` [r] of each,
  `truth` [r] the reference row of each one's first segment."""
  segments: np.ndarray
  truth: np.ndarray
  names: list  # For errors.
  read: object  # (recording, first segment, segments) -> [segments, dim] float32.


def _recordings(path, truth_path, dim, reference_tracks_path):
  """The query recordings of an .npy `[queries, segments, dim]` (one recording
  per query; `truth_path` an integer .npy) or of an NMFP folder (one
  `[segments, dim]` .npy per recording, its `ground_truth.csv` and the
  references' `database.csv`; rfp.layouts)."""
  path = pathlib.Path(path)
  if not path.exists():
    raise InputError(f'{path}: not found; set eval.sequence_queries=None to evaluate '
                     'single-window queries only')
  if not truth_path:
    raise InputError('eval.sequence_ground_truth is not set: multi-segment queries need the '
                     "reference row of each query's first segment")
  if path.is_dir():
    if not reference_tracks_path or pathlib.Path(reference_tracks_path).suffix != '.csv':
      raise InputError(f'{path}: NMFP queries name their reference tracks; set '
                       'eval.reference_tracks to the references\' database.csv')
    files, truth = layouts.read_nmfp_queries(path, truth_path, reference_tracks_path)
    parts = [data.open_embeddings(f, dim) for f in files]
    return _Recordings(np.array([e.n for e in parts], np.int64), truth, [str(f) for f in files],
                       lambda r, a, n: parts[r].read(a, a + n))
  try:
    q_qld = np.load(path, mmap_mode='r', allow_pickle=False)
  except (ValueError, OSError) as e:
    raise InputError(f'{path}: cannot read ({e})') from e
  if q_qld.ndim != 3 or q_qld.shape[2] != dim or q_qld.dtype.kind != 'f':
    raise InputError(f'{path}: expected float queries [queries, segments, {dim}], '
                     f'got {q_qld.dtype} {q_qld.shape}')
  truth = data.int_vector(truth_path, len(q_qld), path,
                          "the reference row of each query's first segment")
  return _Recordings(np.full(len(q_qld), q_qld.shape[1], np.int64), truth,
                     [f'query {i} of {path}' for i in range(len(q_qld))],
                     lambda r, a, n: np.asarray(q_qld[r, a:a + n], np.float32))


def _starts(segments_r, longest, step):
  """(recording [s], first segment [s]) of every query of `longest` segments that
  starts every `step` segments of each recording, as NMFP's evaluation cuts them."""
  per_r = (segments_r - longest) // step + 1
  recording = np.repeat(np.arange(len(segments_r)), per_r)
  first = (np.arange(len(recording)) - np.repeat(np.cumsum(per_r) - per_r, per_r)) * step
  return recording, first


def open_sequences(paths, queries, reference, ref_bounds, eval_cfg, notes):
  """The multi-segment queries, checked against the references: every segment's
  true row exists, in the first segment's track. From `paths['sequence_queries']`
  (an .npy `[q, segments, dim]` or an NMFP folder), a query starting every
  `eval.sequence_query_step` segments of each recording, or, in a NAFP folder,
  runs of consecutive query rows (query row i is db row i). None when there
  are none to evaluate; lengths past the shortest recording are dropped (noted)."""
  lengths = _lengths(eval_cfg)
  if not lengths:
    return None
  rng = np.random.default_rng([eval_cfg.seed, 5])
  if eval_cfg.num_sequence_queries < 1:
    raise InputError(f'eval.num_sequence_queries={eval_cfg.num_sequence_queries}: must be at least 1')
  if eval_cfg.sequence_query_step < 1:
    raise InputError(f'eval.sequence_query_step={eval_cfg.sequence_query_step}: must be at least 1')
  if 'nafp' in paths:
    source, longest = queries.path, min(lengths[-1], queries.n)
  elif paths['sequence_queries']:
    recordings = _recordings(paths['sequence_queries'], paths['sequence_ground_truth'],
                             reference.dim, paths['reference_tracks'])
    source, longest = paths['sequence_queries'], int(recordings.segments.min())
  else:
    return None
  if lengths[-1] > longest:
    notes.append(f'{source} holds queries of {longest} segments (the shortest): lengths '
                 f'{", ".join(str(n) for n in lengths if n > longest)} not evaluated')
    lengths = [n for n in lengths if n <= longest] or [longest]
  longest = lengths[-1]
  if 'nafp' in paths:
    candidates = np.arange(max(queries.n - longest + 1, 0))
    starts = candidates[bounds_lib.valid_starts(candidates, ref_bounds, longest)]
    if not len(starts):
      raise InputError(f'{queries.path}: no run of {longest} query rows in one track')
    gt = starts[rows_lib.sample_rows(len(starts), eval_cfg.num_sequence_queries, rng)]
    rows = gt  # Each run starts at its query row, which is its truth.
    picked = queries.take((gt[:, None] + np.arange(longest)).ravel()).reshape(
        len(gt), longest, -1)
  else:
    recording, first = _starts(recordings.segments, longest, eval_cfg.sequence_query_step)
    truth = recordings.truth[recording] + first
    bad = np.flatnonzero(~bounds_lib.valid_starts(truth, ref_bounds, longest))
    if len(bad):
      raise InputError(f'{paths["sequence_ground_truth"]}: {recordings.names[recording[bad[0]]]} '
                       f'at segment {first[bad[0]]} is reference row {truth[bad[0]]}, which has '
                       f'no run of {longest} rows in one track of {reference.path} '
                       f'({len(bad)} such queries)')
    rows = rows_lib.sample_rows(len(truth), eval_cfg.num_sequence_queries, rng)
    picked = np.stack([recordings.read(recording[i], first[i], longest) for i in rows])
    gt = truth[rows]
  rows_lib.check_finite(picked.reshape(len(picked), -1), source, rows)
  true_scores = {n: sequences_lib.start_scores(picked[:, :n], reference, gt[:, None])[:, 0]
                 for n in lengths}
  return Sequences(picked, rows, gt, tuple(lengths), true_scores)


def _same_file(a, b):
  return a is not None and b is not None and pathlib.Path(a).resolve() == pathlib.Path(b).resolve()


def open_inputs(eval_cfg, run_config, progress=False):
  """Opens and checks every evaluation input; any problem is one `InputError`.

  `eval_cfg` is the `eval` config section; `run_config` the run's config dict (its
  model dimension must match, and its training file, when disjoint from the
  distractor pool and the references, serves as the second real set). Every
  row of the references, the pool and the second set is checked for NaN/Inf
  (`progress`: with a bar).
  """
  paths = _resolve_paths(eval_cfg)
  notes = []
  if not paths['reference']:
    raise InputError('eval.reference is not set')
  reference = data.open_embeddings(paths['reference'])
  if run_config['model']['dim'] != reference.dim:
    raise InputError(f'{reference.path}: dimension {reference.dim}, but the run models '
                     f'{run_config["model"]["dim"]}-d embeddings')
  if not paths['queries'] and not paths['sequence_queries']:
    raise InputError('eval.queries is not set')
  queries = _open_like(paths['queries'], reference, 'queries') if paths['queries'] else None

  if queries is None:
    ground_truth = None  # The multi-segment queries' first segments stand in.
  elif 'nafp' in paths:
    if queries.n > reference.n:
      raise InputError(f'{queries.path}: {queries.n} queries but only {reference.n} rows in '
                       f'{reference.path}; NAFP pairs query i with db row i')
    ground_truth = np.arange(queries.n)
    paths['ground_truth'] = 'query i is db row i (NAFP layout)'
  else:
    if not paths['ground_truth']:
      raise InputError('eval.ground_truth is not set: queries need ground truth (the '
                       'reference row each query was cut from)')
    ground_truth = data.int_vector(paths['ground_truth'], queries.n, queries.path,
                               'queries need ground truth (the reference row of each query)')
    bad = np.flatnonzero((ground_truth < 0) | (ground_truth >= reference.n))
    if len(bad):
      raise InputError(f'{paths["ground_truth"]}: entry {bad[0]} points at reference row '
                       f'{ground_truth[bad[0]]}, outside the {reference.n} rows of '
                       f'{reference.path} ({len(bad)} such entries)')

  # Every track file before any work: one that belongs to another file is refused here.
  paths['reference_tracks'] = _tracks_file(paths['reference_tracks'], reference.path,
                                           'eval.reference_tracks')
  tracks = None
  if paths['reference_tracks']:
    tracks = data.track_ids(paths['reference_tracks'], reference,
                        'set eval.reference_tracks=None to evaluate without track ids')
  bounds = {'reference': (bounds_lib.bounds_from_ids(tracks) if tracks is not None
                          else bounds_lib.track_bounds([0], reference.n))}

  real = None
  if paths['real_distractors']:
    real = _open_like(paths['real_distractors'], reference, 'real distractors')
    if _same_file(real.path, reference.path):
      raise InputError(f'{real.path}: is also the reference file; distractors must be other rows')
    paths['real_distractor_tracks'] = _tracks_file(paths['real_distractor_tracks'], real.path,
                                                   'eval.real_distractor_tracks')
    bounds['real'] = _bounds(paths['real_distractor_tracks'], real, 'eval.real_distractor_tracks')
    if bounds['real'] is None:
      notes.append(f'no track ids for {real.path}: its sets are runs of consecutive rows at '
                   'random offsets, the file read as one track')
  else:
    paths['real_distractor_tracks'] = None
    notes.append('no real distractor pool: synthetic curve only')

  real2 = None
  train_path = run_config.get('data', {}).get('train')
  if train_path and pathlib.Path(train_path).is_file():
    if _same_file(train_path, paths['real_distractors']) or _same_file(train_path, reference.path):
      notes.append(f'the flow training file {train_path} is not disjoint from the evaluation '
                   'data: the real-vs-real floor uses two halves of the real rows')
    else:
      real2 = _open_like(train_path, reference, 'flow training rows')
      paths['real2_tracks'] = _tracks_file(run_config.get('data', {}).get('train_tracks'),
                                           train_path, 'data.train_tracks')
      bounds['real2'] = _bounds(paths['real2_tracks'], real2, 'data.train_tracks')
  else:
    notes.append('the flow training file is not available: the real-vs-real floor uses two '
                 'halves of the real rows')

  if eval_cfg.num_queries < 1:
    raise InputError(f'eval.num_queries={eval_cfg.num_queries}: must be at least 1')
  check_positive_int(eval_cfg.index.part_rows, 'eval.index.part_rows')
  # Before any figure: one bad row would shift hardness silently, or stop faiss mid-sweep.
  rows_lib.check_files_finite([e for e in (reference, real, real2) if e is not None], progress)
  seqs = open_sequences(paths, queries, reference, bounds['reference'], eval_cfg, notes)
  if queries is None:
    if seqs is None:
      raise InputError('eval.queries is not set and eval.query_lengths is empty: nothing to query')
    queries_qd, query_rows, gt = seqs.q_qld[:, 0], seqs.query_rows, seqs.ground_truth
    paths['queries'] = f'{paths["sequence_queries"]} (first segments)'
    paths['ground_truth'] = f'{paths["sequence_ground_truth"]} (first segments)'
  else:
    query_rows = rows_lib.sample_rows(queries.n, eval_cfg.num_queries,
                                      np.random.default_rng([eval_cfg.seed, 0]))
    queries_qd = queries.take(query_rows)
    rows_lib.check_finite(queries_qd, queries.path, query_rows)
    gt = ground_truth[query_rows]
  true_scores = np.einsum('qd,qd->q', queries_qd, reference.take(gt))
  return Inputs(reference, queries_qd, query_rows, gt, true_scores, tracks, real, real2, seqs,
                bounds, {k: str(v) if v is not None else None for k, v in paths.items()},
                tuple(notes))
