"""The systems' native file layouts, read as they are and written from data/.

NAFP, GraFPrint and PeakNetFP: a folder of raw float32 row-major files with
their shapes beside them, `db.mm` + `db_shape.npy` (references, tracks in
order), `query.mm` (query row i is a distorted copy of db row i; an L-segment
query is L consecutive query rows) and `dummy_db.mm` (distractors).

NMFP: a database is `database.mm` (raw float32) with `database.csv` naming each
track and its rows (`file_name,start,end,emb_dim`); queries are one `.npy`
`[segments, dim]` per query in a folder with `queries.csv` (`audio_path,
chunk_bound_start`: the query's first segment within its track), and
`ground_truth.csv` (`query_path,reference_path`) pairs query and reference
files by stem.

No JAX here: `build_data.py --layout` writes these from data/ and training and
evaluation read them (configs/nafp.py, configs/nmfp.py point at them).
"""

import csv
import pathlib

import numpy as np

from rfp.bounds import bounds_from_ids
from rfp.errors import InputError

NMFP_COLUMNS = ('file_name', 'start', 'end', 'emb_dim')


def _rows(path, what):
  try:
    with open(path, newline='') as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise InputError(f'{path}: cannot read {what} ({e.strerror})') from e
  if not rows:
    raise InputError(f'{path}: empty; expected {what}')
  return rows[0], rows[1:]


def read_nmfp_database(csv_path):
  """NMFP's `database.csv`: (names [tracks], starts [tracks], row count, dim); the
  tracks must tile the rows in order."""
  header, rows = _rows(csv_path, 'track boundaries')
  if tuple(h.strip() for h in header[:4]) != NMFP_COLUMNS:
    raise InputError(f'{csv_path}: header {header}; expected {",".join(NMFP_COLUMNS)}')
  try:
    names = [r[0] for r in rows]
    start_end = np.array([[int(r[1]), int(r[2])] for r in rows], np.int64).reshape(-1, 2)
    dims = {int(r[3]) for r in rows}
  except (IndexError, ValueError) as e:
    raise InputError(f'{csv_path}: unreadable row ({e})') from e
  if not rows or len(dims) != 1:
    raise InputError(f'{csv_path}: expected tracks of one embedding dimension, got {sorted(dims)}')
  starts, ends = start_end[:, 0], start_end[:, 1]
  if starts[0] != 0 or np.any(ends <= starts) or np.any(starts[1:] != ends[:-1]):
    raise InputError(f'{csv_path}: tracks must follow one another from row 0 without gaps')
  return names, starts, int(ends[-1]), dims.pop()


def nmfp_track_ids(csv_path):
  """[rows] track index of each row of an NMFP database."""
  _, starts, n, _ = read_nmfp_database(csv_path)
  return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))


def read_nmfp_queries(folder, ground_truth_csv, reference_csv):
  """NMFP queries: (file paths, [queries] reference row of each query's first
  segment), in file-name order; each query is read when needed."""
  folder = pathlib.Path(folder)
  paths = sorted(folder.rglob('*.npy'))
  if not paths:
    raise InputError(f'{folder}: no query .npy files')
  _, listed = _rows(folder / 'queries.csv', 'query starts (audio_path,chunk_bound_start)')
  try:
    chunk_start = {pathlib.Path(r[0]).stem: int(r[1]) for r in listed}
  except (IndexError, ValueError) as e:
    raise InputError(f'{folder / "queries.csv"}: unreadable row ({e})') from e
  _, pairs = _rows(ground_truth_csv, 'query,reference pairs')
  reference_of = {pathlib.Path(r[0]).stem: pathlib.Path(r[1]).stem for r in pairs if len(r) > 1}
  names, starts, _, _ = read_nmfp_database(reference_csv)
  first_row = {pathlib.Path(name).stem: int(s) for name, s in zip(names, starts)}
  truth = []
  for path in paths:
    stem = path.stem
    if stem not in chunk_start or stem not in reference_of:
      raise InputError(f'{path}: not listed in {folder / "queries.csv"} and {ground_truth_csv}')
    if reference_of[stem] not in first_row:
      raise InputError(f'{ground_truth_csv}: reference {reference_of[stem]} of query {stem} is '
                       f'not a track of {reference_csv}')
    truth.append(first_row[reference_of[stem]] + chunk_start[stem])
  return paths, np.array(truth, np.int64)


def _write_mm(path, x_nd):
  np.asarray(x_nd, np.float32).tofile(path)


def write_nafp(out, reference_nd, track_queries_nd, distractors_nd, train_nd):
  """A NAFP-style folder: db.mm, query.mm, dummy_db.mm and, for the flow, train.mm,
  each with its `_shape.npy`."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  for name, x in (('db', reference_nd), ('query', track_queries_nd),
                  ('dummy_db', distractors_nd), ('train', train_nd)):
    _write_mm(out / f'{name}.mm', x)
    np.save(out / f'{name}_shape.npy', np.array(x.shape, np.int64))


def _write_nmfp_database(folder, x_nd, track_n, prefix):
  folder.mkdir(parents=True, exist_ok=True)
  _write_mm(folder / 'database.mm', x_nd)
  bounds = bounds_from_ids(track_n)
  starts, ends = bounds[:-1], bounds[1:]
  with open(folder / 'database.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(NMFP_COLUMNS)
    for t, (a, b) in enumerate(zip(starts, ends)):
      w.writerow([f'{prefix}{t:05d}.npy', int(a), int(b), x_nd.shape[1]])
  return starts


def write_nmfp(out, reference_nd, reference_tracks, queries_qld, truth_q, distractors_nd,
               distractors_tracks, train_nd, train_tracks):
  """An NMFP-style folder: reference/, distractors/ and train/ databases
  (database.mm + database.csv), queries/ (one .npy per query + queries.csv)
  and ground_truth.csv."""
  out = pathlib.Path(out)
  ref_starts = _write_nmfp_database(out / 'reference', reference_nd, reference_tracks, 'ref')
  _write_nmfp_database(out / 'distractors', distractors_nd, distractors_tracks, 'dis')
  _write_nmfp_database(out / 'train', train_nd, train_tracks, 'trn')
  queries = out / 'queries'
  queries.mkdir(parents=True, exist_ok=True)
  track_q = np.searchsorted(ref_starts, truth_q, side='right') - 1
  with open(queries / 'queries.csv', 'w', newline='') as fq, \
       open(out / 'ground_truth.csv', 'w', newline='') as fg:
    wq, wg = csv.writer(fq), csv.writer(fg)
    wq.writerow(['audio_path', 'chunk_bound_start'])
    wg.writerow(['query_path', 'reference_path'])
    for i, (q_ld, t) in enumerate(zip(queries_qld, track_q)):
      np.save(queries / f'q{i:05d}.npy', np.asarray(q_ld, np.float32))
      wq.writerow([f'q{i:05d}.wav', int(truth_q[i] - ref_starts[t])])
      wg.writerow([f'q{i:05d}.wav', f'ref{t:05d}.wav'])


LAYOUTS = ('nafp', 'nmfp')


def write_layout(layout, data_dir, out):
  """Writes the data of `data_dir` (as build_data.py exports it) in a system's layout."""
  data_dir = pathlib.Path(data_dir)
  needed = ('reference', 'reference_tracks', 'track_queries', 'sequence_queries',
            'sequence_ground_truth', 'distractors', 'distractors_tracks', 'flow_train',
            'flow_train_tracks')
  missing = [n for n in needed if not (data_dir / f'{n}.npy').is_file()]
  if missing:
    raise InputError(f'{data_dir}: no {missing[0]}.npy; rebuild it with build_data.py')
  a = {n: np.load(data_dir / f'{n}.npy', mmap_mode='r') for n in needed}
  if layout == 'nafp':
    write_nafp(out, a['reference'], a['track_queries'], a['distractors'], a['flow_train'])
  elif layout == 'nmfp':
    write_nmfp(out, a['reference'], a['reference_tracks'], a['sequence_queries'],
               a['sequence_ground_truth'], a['distractors'], a['distractors_tracks'],
               a['flow_train'], a['flow_train_tracks'])
  else:
    raise InputError(f'layout {layout!r}: expected one of {", ".join(LAYOUTS)}')
