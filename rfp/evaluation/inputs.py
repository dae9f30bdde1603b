"""Evaluation inputs: the files, checked once, before anything is sampled or indexed.

References, queries and their ground truth (the reference row each query was
cut from), optional track ids, the real distractor pool and a second real set
(the run's training file when it is disjoint: the real-vs-real floor). Files
come from `eval.*` paths or from a NAFP-style folder. Every file is opened
read-only; any problem is one `InputError`.
"""

import dataclasses
import pathlib

import numpy as np

from rfp import data, rows as rows_lib
from rfp.errors import InputError

NAFP_FILES = {'reference': 'db.mm', 'queries': 'query.mm', 'real_distractors': 'dummy_db.mm'}


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


def _resolve_paths(eval_cfg, nafp):
  """Input paths from the config, or from a NAFP-style folder."""
  folder = nafp or (eval_cfg.reference if eval_cfg.reference and pathlib.Path(eval_cfg.reference).is_dir()
                    else None)
  if folder is None:
    return {k: eval_cfg[k] for k in ('reference', 'reference_tracks', 'queries', 'ground_truth',
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


def _same_file(a, b):
  return a is not None and b is not None and pathlib.Path(a).resolve() == pathlib.Path(b).resolve()


def open_inputs(eval_cfg, run_config, nafp=None, progress=False):
  """Opens and checks every evaluation input; any problem is one `InputError`.

  `eval_cfg` is the `eval` config section; `run_config` the run's config dict (its
  model dimension must match, and its training file, when disjoint from the
  distractor pool and the references, serves as the second real set). Every
  row of the references, the pool and the second set is checked for NaN/Inf
  (`progress`: with a bar).
  """
  paths = _resolve_paths(eval_cfg, nafp)
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

  rng = np.random.default_rng([eval_cfg.seed, 0])
  if eval_cfg.num_queries < 1:
    raise InputError(f'eval.num_queries={eval_cfg.num_queries}: must be at least 1')
  query_rows = rows_lib.sample_rows(queries.n, eval_cfg.num_queries, rng)
  queries_qd = queries.take(query_rows)
  rows_lib.check_finite(queries_qd, queries.path, query_rows)
  # Before any figure: one bad row would shift hardness silently, or stop faiss mid-sweep.
  rows_lib.check_files_finite([e for e in (reference, real, real2) if e is not None], progress)
  gt = ground_truth[query_rows]
  true_scores = np.einsum('qd,qd->q', queries_qd, reference.take(gt))
  return Inputs(reference, queries_qd, query_rows, gt, true_scores, tracks, real, real2,
                {k: str(v) if v is not None else None for k, v in paths.items()}, tuple(notes))
