"""The systems' native file layouts, read as they are and written from data/.

NAFP, GraFPrint and PeakNetFP: a folder of raw float32 row-major files with
their shapes beside them, `db.mm` + `db_shape.npy` (references, tracks in
order), `query.mm` (query row i is a distorted copy of db row i; an L-segment
query is L consecutive query rows) and `dummy_db.mm` (distractors).

NMFP (raraz15/neural-music-fp), as its scripts write them: a database is
`database.mm` (raw float32) with `database.csv` giving each track's rows
[start, end) of it, one track after another from row 0. Its
`evaluation-extraction.py` writes the header `audio_path,start_segment,
end_segment,emb_dim`, its `merge_embeddings.py` (after `extraction.py`)
`file_name,start,end,emb_dim`; the rows are the same. Queries are one `.npy`
`[segments, dim]` per query recording (`queries/<stem[:3]>/<stem>.npy`) with
`queries.csv` (`audio_path,start_segment,end_segment`: the recording's first
segment within its track, i.e. its offset in that track's rows, as NMFP's
`evaluation-retrieval.py` compares them), and `ground_truth.csv`
(`query_path,reference_path`) pairs query and reference files by stem. NMFP's
evaluation starts a query every `delta_n` segments of each recording
(`eval.sequence_query_step`).

No JAX here: `build_data.py --layout` writes these from data/ and training and
evaluation read them (configs/nafp.py, configs/nmfp.py point at them).
"""

import csv
import pathlib

import numpy as np

from rfp.bounds import bounds_from_ids
from rfp.errors import InputError

# database.csv as NMFP's evaluation-extraction.py, and as its merge_embeddings.py, write it.
NMFP_EXTRACTION_COLUMNS = ('audio_path', 'start_segment', 'end_segment', 'emb_dim')
NMFP_MERGE_COLUMNS = ('file_name', 'start', 'end', 'emb_dim')
# queries.csv as evaluation-extraction.py writes it (its retrieval reads the first two columns).
NMFP_QUERY_COLUMNS = ('audio_path', 'start_segment', 'end_segment')


def _rows(path, what):
  try:
    with open(path, newline='') as f:
      rows = [r for r in csv.reader(f) if r]
  except OSError as e:
    raise InputError(f'{path}: cannot read {what} ({e.strerror})') from e
  if not rows:
    raise InputError(f'{path}: empty; expected {what}')
  return [h.strip() for h in rows[0]], rows[1:]


def read_nmfp_database(csv_path):
  """NMFP's `database.csv`: (names [tracks], bounds [tracks + 1], dim), bounds
  being each track's first row in database.mm, then the row count."""
  header, rows = _rows(csv_path, 'track boundaries')
  if tuple(header[:4]) not in (NMFP_EXTRACTION_COLUMNS, NMFP_MERGE_COLUMNS):
    raise InputError(f'{csv_path}: header {",".join(header)}; expected '
                     f'{",".join(NMFP_EXTRACTION_COLUMNS)} (NMFP\'s evaluation-extraction.py) or '
                     f'{",".join(NMFP_MERGE_COLUMNS)} (its merge_embeddings.py)')
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
    bad = int(np.flatnonzero(np.append(starts[0] != 0, starts[1:] != ends[:-1]) | (ends <= starts))[0])
    raise InputError(f'{csv_path}: track {names[bad]} has rows [{starts[bad]}, {ends[bad]}); NMFP '
                     'writes each track\'s rows of database.mm one after another from row 0')
  return names, np.append(starts, ends[-1]), dims.pop()


def nmfp_track_ids(csv_path):
  """[rows] track index of each row of an NMFP database."""
  _, bounds, _ = read_nmfp_database(csv_path)
  return np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))


def read_nmfp_queries(folder, ground_truth_csv, reference_csv):
  """NMFP queries: (file paths, [files] reference row of each file's first
  segment), in file-name order; each file is read when needed."""
  folder = pathlib.Path(folder)
  paths = sorted(folder.rglob('*.npy'))
  if not paths:
    raise InputError(f'{folder}: no query .npy files')
  listing = folder / 'queries.csv'
  header, listed = _rows(listing, 'query starts (' + ','.join(NMFP_QUERY_COLUMNS) + ')')
  if header[:1] != ['audio_path'] or len(header) < 2:
    raise InputError(f'{listing}: header {",".join(header)}; expected '
                     f'{",".join(NMFP_QUERY_COLUMNS)} (NMFP\'s evaluation-extraction.py)')
  try:
    first_segment = {pathlib.Path(r[0]).stem: int(r[1]) for r in listed if len(r) > 1 and r[1]}
  except ValueError as e:
    raise InputError(f'{listing}: unreadable row ({e})') from e
  _, pairs = _rows(ground_truth_csv, 'query,reference pairs')
  reference_of = {pathlib.Path(r[0]).stem: pathlib.Path(r[1]).stem for r in pairs if len(r) > 1}
  names, bounds, _ = read_nmfp_database(reference_csv)
  track_of = {pathlib.Path(name).stem: t for t, name in enumerate(names)}
  truth = []
  for path in paths:
    stem = path.stem
    if stem not in first_segment:
      raise InputError(f'{listing}: no start segment for query {stem} ({path}); rfp needs each '
                       'query\'s start within its reference track (NMFP writes it where the '
                       'query chunks have boundary .npy files)')
    if stem not in reference_of:
      raise InputError(f'{ground_truth_csv}: no reference for query {stem} ({path})')
    t = track_of.get(reference_of[stem])
    if t is None:
      raise InputError(f'{ground_truth_csv}: reference {reference_of[stem]} of query {stem} is '
                       f'not a track of {reference_csv}')
    if not 0 <= first_segment[stem] < bounds[t + 1] - bounds[t]:
      raise InputError(f'{listing}: query {stem} starts at segment {first_segment[stem]} of '
                       f'{names[t]}, which has {bounds[t + 1] - bounds[t]} rows in {reference_csv}')
    truth.append(bounds[t] + first_segment[stem])
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


def _write_nmfp_database(folder, x_nd, track_n, prefix, columns):
  """database.mm + database.csv; `columns`: the extraction script's header (tracks
  named by their audio) or the merge script's (named by their .npy)."""
  folder.mkdir(parents=True, exist_ok=True)
  _write_mm(folder / 'database.mm', x_nd)
  bounds = bounds_from_ids(track_n)
  suffix = '.wav' if columns == NMFP_EXTRACTION_COLUMNS else '.npy'
  with open(folder / 'database.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(columns)
    for t, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
      w.writerow([f'{prefix}{t:05d}{suffix}', int(a), int(b), x_nd.shape[1]])
  return bounds


def write_nmfp(out, reference_nd, reference_tracks, queries_qld, truth_q, distractors_nd,
               distractors_tracks, train_nd, train_tracks):
  """An NMFP-style folder, each file as NMFP's scripts write it: reference/
  (evaluation-extraction.py's database), distractors/ and train/
  (extraction.py + merge_embeddings.py), queries/ (one .npy per query under
  its stem's first three characters, and queries.csv) and ground_truth.csv."""
  out = pathlib.Path(out)
  ref_bounds = _write_nmfp_database(out / 'reference', reference_nd, reference_tracks, 'ref',
                                    NMFP_EXTRACTION_COLUMNS)
  _write_nmfp_database(out / 'distractors', distractors_nd, distractors_tracks, 'dis',
                       NMFP_MERGE_COLUMNS)
  _write_nmfp_database(out / 'train', train_nd, train_tracks, 'trn', NMFP_MERGE_COLUMNS)
  queries = out / 'queries'
  queries.mkdir(parents=True, exist_ok=True)
  track_q = np.searchsorted(ref_bounds, truth_q, side='right') - 1
  with open(queries / 'queries.csv', 'w', newline='') as fq, \
       open(out / 'ground_truth.csv', 'w', newline='') as fg:
    wq, wg = csv.writer(fq), csv.writer(fg)
    wq.writerow(NMFP_QUERY_COLUMNS)
    wg.writerow(['query_path', 'reference_path'])
    for i, (q_ld, t) in enumerate(zip(queries_qld, track_q)):
      stem, start = f'q{i:05d}', int(truth_q[i] - ref_bounds[t])
      (queries / stem[:3]).mkdir(exist_ok=True)
      np.save(queries / stem[:3] / f'{stem}.npy', np.asarray(q_ld, np.float32))
      # The chunk's end in hops, as the extraction script rounds its last sample.
      wq.writerow([f'{stem}.wav', start, start + len(q_ld) + 1])
      wg.writerow([f'{stem}.wav', f'ref{t:05d}.wav'])


# Each layout and what its folder holds (for --help).
LAYOUTS = {
    'nafp': 'db.mm, query.mm, dummy_db.mm + *_shape.npy: NAFP, GraFPrint, PeakNetFP',
    'nmfp': 'reference/, distractors/, train/ (database.mm + database.csv), queries/, '
            'ground_truth.csv'}


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
