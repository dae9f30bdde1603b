"""The systems' own layouts: written from a data folder, read back as they are.

NMFP's files are also written here as its own scripts write them
(raraz15/neural-music-fp): `evaluation-extraction.py` (one database.mm with
`audio_path,start_segment,end_segment,emb_dim`, query .npy files under their
stem's first three characters and `queries.csv` from the chunks' boundary
samples) and `extraction.py` + `merge_embeddings.py` (`file_name,start,end,emb_dim`).
"""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SCRIPT_ENV, TINY, config_flags, mixture, unit_rows
from configs import base
from rfp import bounds, data, layouts
from rfp.errors import InputError
from rfp.evaluation import inputs

DIM = 8
FS, HOP = 8000, 0.5  # NMFP's DATASET_SAMPLE_RATE and --hop-duration.


def _data_folder(path):
  """A small data/ as build_data.py exports it: tracks of 5, 7 and 4 rows."""
  path.mkdir()
  ref_tracks = np.repeat([0, 1, 2], [5, 7, 4]).astype(np.int32)
  truth = np.array([0, 5, 7, 12])
  arrays = {
      'reference': unit_rows(16, DIM, 1), 'reference_tracks': ref_tracks,
      'track_queries': unit_rows(16, DIM, 2),
      'sequence_queries': unit_rows(12, DIM, 3).reshape(4, 3, DIM),
      'sequence_ground_truth': truth,
      'distractors': unit_rows(9, DIM, 4), 'distractors_tracks': np.repeat([0, 1], [6, 3]),
      'flow_train': unit_rows(10, DIM, 5), 'flow_train_tracks': np.repeat([3, 8, 9], [2, 3, 5])}
  for name, a in arrays.items():
    np.save(path / f'{name}.npy', a)
  return arrays


def _nmfp_extraction(out, tracks, chunks):
  """What NMFP's evaluation-extraction.py writes for the database `tracks` {wav
  path: [segments, d]} and the query `chunks` {wav path: ([segments, d], its
  boundary .npy: first and last sample in its full track)}: its code paths
  (EvaluationLoader.get_track_information, parse_memmap, the queries.csv block)."""
  db, q = out / 'database', out / 'queries'
  db.mkdir(parents=True)
  paths = sorted(tracks)  # get_track_segment_dict sorts the paths.
  track_boundaries = [[0]]
  for i, path in enumerate(paths):
    track_boundaries[-1].append(track_boundaries[-1][0] + len(tracks[path]))
    if i < len(paths) - 1:
      track_boundaries.append([track_boundaries[-1][1]])
  arr = np.memmap(db / 'database.mm', dtype='float32', mode='w+',
                  shape=(track_boundaries[-1][1], DIM))
  arr[:] = np.concatenate([tracks[p] for p in paths])
  del arr
  with open(db / 'database.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['audio_path', 'start_segment', 'end_segment', 'emb_dim'])
    for f_path, (start, end) in zip(paths, track_boundaries):
      writer.writerow([f_path, start, end, DIM])
  for path in sorted(chunks):
    track_id = pathlib.Path(path).stem
    (q / track_id[:3]).mkdir(parents=True, exist_ok=True)
    np.save(q / track_id[:3] / f'{track_id}.npy', np.array(chunks[path][0], np.float32))
  with open(q / 'queries.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['audio_path', 'start_segment', 'end_segment'])
    for f_path in sorted(chunks):
      start_idx, end_idx = chunks[f_path][1]
      start_time, end_time = start_idx / FS, end_idx / FS
      t = HOP * np.arange(0, (end_time // HOP) + 5)
      start_time = t[np.abs(t - start_time).argmin()]
      end_time = t[np.abs(t - end_time).argmin()]
      writer.writerow([f_path, int(start_time / HOP), int(end_time / HOP)])


def _nmfp_merge(embeddings_dir):
  """What NMFP's merge_embeddings_to_memmap writes beside `embeddings_dir` (one
  .npy per track, extraction.py's output): the tracks in file-name order."""
  emb_paths = sorted(embeddings_dir.rglob('*.npy'))
  fnames_and_lens = dict(sorted({p.name: np.load(p, mmap_mode='r').shape[0]
                                 for p in emb_paths}.items()))
  starts_ends, offset = [], 0
  for n_rows in fnames_and_lens.values():
    starts_ends.append((offset, offset + n_rows))
    offset += n_rows
  name_to_path = {p.name: p for p in emb_paths}
  memmap = np.memmap(embeddings_dir.parent / 'database.mm', dtype=np.float32, mode='w+',
                     shape=(offset, DIM))
  for fname, (start, end) in zip(fnames_and_lens, starts_ends):
    memmap[start:end, :] = np.load(name_to_path[fname], mmap_mode='r')[:]
  memmap.flush()
  del memmap
  with open(embeddings_dir.parent / 'database.csv', 'w', newline='') as csvfile:
    writer = csv.writer(csvfile)
    writer.writerow(['file_name', 'start', 'end', 'emb_dim'])
    for fname, (start, end) in zip(fnames_and_lens, starts_ends):
      writer.writerow([fname, start, end, DIM])


def _nmfp_evaluation_files(out):
  """References of 30, 25 and 40 segments and two 20-segment query chunks, cut at
  1.5 s of the second track and 7 s of the third (not a whole hop: a time-shifted
  query), in NMFP's extraction layout. Returns (references, expected truth of
  each query's first segment)."""
  refs = {f'/audio/db/{i:06d}.wav': unit_rows(n, DIM, i) for i, n in ((5, 30), (7, 25), (9, 40))}
  noisy = lambda x, seed: x + 0.01 * np.random.default_rng(seed).normal(size=x.shape)
  chunks = {'/audio/q/000007.wav': (noisy(refs['/audio/db/000007.wav'][3:23], 0), (12000, 92000)),
            '/audio/q/000009.wav': (noisy(refs['/audio/db/000009.wav'][14:34], 1), (56100, 136100))}
  _nmfp_extraction(out, refs, chunks)
  with open(out / 'ground_truth.csv', 'w', newline='') as f:
    csv.writer(f).writerows([['query_path', 'reference_path'],
                             ['/audio/q/000007.wav', '/audio/db/000007.wav'],
                             ['/audio/q/000009.wav', '/audio/db/000009.wav']])
  return np.concatenate(list(refs.values())), np.array([30 + 3, 30 + 25 + 14])


def test_nmfp_extraction_files_read_as_nmfp_evaluates_them(tmp_path):
  refs, truth = _nmfp_evaluation_files(tmp_path)
  emb = data.open_embeddings(tmp_path / 'database' / 'database.mm')  # Shape from database.csv.
  np.testing.assert_array_equal(emb.read(0, emb.n), refs)
  np.testing.assert_array_equal(
      bounds.bounds_from_ids(layouts.nmfp_track_ids(tmp_path / 'database' / 'database.csv')),
      [0, 30, 55, 95])
  paths, first_rows = layouts.read_nmfp_queries(tmp_path / 'queries', tmp_path / 'ground_truth.csv',
                                                tmp_path / 'database' / 'database.csv')
  assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
      'queries/000/000007.npy', 'queries/000/000009.npy']
  np.testing.assert_array_equal(first_rows, truth)


def test_nmfp_queries_start_every_step_segments_of_each_recording(tmp_path):
  """NMFP's evaluation-retrieval.py: a query of the longest length every delta_n
  segments of each query file, its truth that file's start plus the offset."""
  refs, truth = _nmfp_evaluation_files(tmp_path)
  c = base.get_config()
  c.eval.query_lengths, c.eval.sequence_query_step, c.eval.num_sequence_queries = [1, 3, 5], 7, 100
  paths = {'sequence_queries': str(tmp_path / 'queries'),
           'sequence_ground_truth': str(tmp_path / 'ground_truth.csv'),
           'reference_tracks': str(tmp_path / 'database' / 'database.csv')}
  reference = data.open_embeddings(tmp_path / 'database' / 'database.mm')
  notes = []
  seqs = inputs.open_sequences(paths, None, reference, np.array([0, 30, 55, 95]), c.eval, notes)
  # 20 segments, 5 long: starts 0, 7 and 14 of each file.
  np.testing.assert_array_equal(seqs.ground_truth, (truth[:, None] + [0, 7, 14]).ravel())
  np.testing.assert_allclose(seqs.q_qld[:, 0], refs[seqs.ground_truth], atol=0.05)
  assert seqs.lengths == (1, 3, 5) and not notes
  c.eval.query_lengths = [1, 19, 21]  # Past the 20 segments of the files: dropped, noted.
  seqs = inputs.open_sequences(paths, None, reference, np.array([0, 30, 55, 95]), c.eval, notes)
  assert seqs.lengths == (1, 19) and len(seqs.ground_truth) == 2 and '21 not evaluated' in notes[0]


def test_nmfp_merged_database_reads_in_file_name_order(tmp_path):
  """extraction.py writes one .npy per track (any subfolders); merge_embeddings.py
  merges them in file-name order."""
  tracks = {'b/0002.npy': unit_rows(4, DIM, 2), 'a/0003.npy': unit_rows(6, DIM, 3),
            'a/0001.npy': unit_rows(3, DIM, 1)}
  for name, x in tracks.items():
    (tmp_path / 'emb' / name).parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp_path / 'emb' / name, x)
  _nmfp_merge(tmp_path / 'emb')
  emb = data.open_embeddings(tmp_path / 'database.mm')
  np.testing.assert_array_equal(emb.read(0, emb.n), np.concatenate(
      [tracks['a/0001.npy'], tracks['b/0002.npy'], tracks['a/0003.npy']]))
  names, track_bounds, dim = layouts.read_nmfp_database(tmp_path / 'database.csv')
  assert names == ['0001.npy', '0002.npy', '0003.npy'] and dim == DIM
  np.testing.assert_array_equal(track_bounds, [0, 3, 7, 13])
  assert data.own_tracks(tmp_path / 'database.mm') == str(tmp_path / 'database.csv')


def test_nafp_folder_holds_the_rows_with_their_shapes(tmp_path):
  arrays = _data_folder(tmp_path / 'data')
  layouts.write_layout('nafp', tmp_path / 'data', tmp_path / 'nafp')
  for name, key in (('db', 'reference'), ('query', 'track_queries'), ('dummy_db', 'distractors'),
                    ('train', 'flow_train')):
    emb = data.open_embeddings(tmp_path / 'nafp' / f'{name}.mm')
    np.testing.assert_array_equal(emb.read(0, emb.n), arrays[key])


def test_nmfp_files_read_back_to_the_same_rows_tracks_and_truth(tmp_path):
  arrays = _data_folder(tmp_path / 'data')
  out = tmp_path / 'nmfp'
  layouts.write_layout('nmfp', tmp_path / 'data', out)
  # As NMFP's scripts write them: the references from its evaluation extraction,
  # the other databases merged.
  assert (out / 'reference' / 'database.csv').read_text().startswith(
      'audio_path,start_segment,end_segment,emb_dim')
  assert (out / 'train' / 'database.csv').read_text().startswith('file_name,start,end,emb_dim')
  assert (out / 'queries' / 'q00' / 'q00003.npy').is_file()
  for folder, key in (('reference', 'reference'), ('distractors', 'distractors'),
                      ('train', 'flow_train')):
    emb = data.open_embeddings(out / folder / 'database.mm')  # Its shape from database.csv.
    np.testing.assert_array_equal(emb.read(0, emb.n), arrays[key])
    np.testing.assert_array_equal(
        bounds.bounds_from_ids(layouts.nmfp_track_ids(out / folder / 'database.csv')),
        bounds.bounds_from_ids(arrays[f'{key}_tracks']))
  paths, truth = layouts.read_nmfp_queries(out / 'queries', out / 'ground_truth.csv',
                                           out / 'reference' / 'database.csv')
  np.testing.assert_array_equal(truth, arrays['sequence_ground_truth'])
  np.testing.assert_array_equal(np.stack([np.load(p) for p in paths]), arrays['sequence_queries'])


def test_files_that_are_not_nmfps_are_one_line_errors(tmp_path):
  _nmfp_evaluation_files(tmp_path)
  csv_path = tmp_path / 'database' / 'database.csv'
  lines = csv_path.read_text().splitlines()
  csv_path.write_text('\n'.join([lines[0], lines[1], lines[3]]) + '\n')  # Rows 30-54 missing.
  with pytest.raises(InputError, match=r'000009.wav has rows \[55, 95\); NMFP writes each '):
    layouts.read_nmfp_database(csv_path)
  csv_path.write_text('name,first,last\n')
  with pytest.raises(InputError, match='header name,first,last; expected audio_path,start_segment,'
                     'end_segment,emb_dim .* or file_name,start,end,emb_dim'):
    layouts.read_nmfp_database(csv_path)
  csv_path.write_text('\n'.join(lines) + '\n')
  truth_csv = tmp_path / 'ground_truth.csv'
  truth_csv.write_text('query_path,reference_path\nq/000007.wav,db/000099.wav\n')
  with pytest.raises(InputError, match='reference 000099 of query 000007 is not a track'):
    layouts.read_nmfp_queries(tmp_path / 'queries', truth_csv, csv_path)
  truth_csv.write_text('query_path,reference_path\nq/000007.wav,db/000007.wav\n')
  with pytest.raises(InputError, match='no reference for query 000009'):
    layouts.read_nmfp_queries(tmp_path / 'queries', truth_csv, csv_path)
  # Chunks without boundary files: NMFP lists their paths only (track-level evaluation).
  (tmp_path / 'queries' / 'queries.csv').write_text(
      'audio_path,start_segment,end_segment\n/audio/q/000007.wav\n/audio/q/000009.wav\n')
  with pytest.raises(InputError, match='queries.csv: no start segment for query 000007'):
    layouts.read_nmfp_queries(tmp_path / 'queries', truth_csv, csv_path)
  (tmp_path / 'queries' / 'queries.csv').write_text('path\n')
  with pytest.raises(InputError, match='queries.csv: header path; expected audio_path,start_segment'):
    layouts.read_nmfp_queries(tmp_path / 'queries', truth_csv, csv_path)


def test_a_bad_data_folder_is_one_line(tmp_path):
  _data_folder(tmp_path / 'data')
  (tmp_path / 'data' / 'sequence_queries.npy').unlink()
  with pytest.raises(InputError, match='no sequence_queries.npy'):
    layouts.write_layout('nmfp', tmp_path / 'data', tmp_path / 'again')


def _mixture_data(path):
  """A 16-d data/ in build_data.py's files, rows drawn around a few centres."""
  path.mkdir()
  x, _ = mixture(400 + 1200 + 3000, dim=16)
  refs, pool, train = x[:400], x[400:1600], x[1600:]
  rng = np.random.default_rng(0)
  noisy = lambda a: (a + 0.03 * rng.normal(size=a.shape)).astype(np.float32)
  starts = np.arange(0, 400, 20) + 3  # One 5-segment query per 20-row track.
  arrays = {
      'reference': refs, 'reference_tracks': np.repeat(np.arange(20), 20),
      'track_queries': noisy(refs), 'sequence_queries': noisy(refs[starts[:, None] + np.arange(5)]),
      'sequence_ground_truth': starts, 'distractors': pool,
      'distractors_tracks': np.repeat(np.arange(40), 30), 'flow_train': train,
      'flow_train_tracks': np.repeat(np.arange(60), 50)}
  for name, a in arrays.items():
    np.save(path / f'{name}.npy', a)


@pytest.mark.parametrize('layout', layouts.LAYOUTS)
def test_the_pipeline_runs_from_each_layout(layout, tmp_path):
  """build_data.py --layout, then train.py with the system's config pointed at
  the folder by one flag, and evaluate.py."""
  _mixture_data(tmp_path / 'data')
  folder = tmp_path / layout
  run = lambda script, *args: subprocess.run(
      [sys.executable, str(ROOT / script), '--quiet', *args], capture_output=True, text=True,
      cwd=ROOT, env=SCRIPT_ENV, timeout=600)
  proc = run('build_data.py', '--layout', layout, '--out', str(tmp_path / 'data'),
             '--layout-out', str(folder))
  assert proc.returncode == 0, proc.stderr
  proc = run('train.py', '--config', f'configs/{layout}.py', '--workdir', str(tmp_path / 'run'),
             f'--{layout}', str(folder), *config_flags({**TINY, 'train.epochs': 1}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  proc = run('evaluate.py', '--workdir', str(tmp_path / 'run'), *config_flags({
      'eval.sizes': [300], 'eval.repeats': 1, 'eval.num_queries': 100,
      'eval.fidelity_rows': 300, 'eval.index.nlist': 8, 'eval.index.nprobe': 8,
      'eval.index.code_bytes': 8, 'eval.index.train_rows': 1000}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((tmp_path / 'run' / 'eval' / 'results.json').read_text())
  assert results['inputs']['real_distractors'].startswith(str(folder))
  # NAFP: runs of consecutive query rows, any length; NMFP: the query files' five segments.
  assert results['sequences']['lengths'] == ([1, 3, 5, 9, 11, 19] if layout == 'nafp' else [1, 3, 5])
  real = results['scaling']['real']
  assert [p['size'] for p in real] == [300]
  # Noisy copies of the true rows: every length finds its run against a small database.
  assert real[0]['sequences']['5']['hr1']['mean'] > 0.9
  # Synthetic tracks, sampled from the run, beside the i.i.d. rows at the sequence sizes.
  assert [p['size'] for p in results['scaling']['tracks']] == [300]
  assert results['synthetic_tracks']['tracks'] and set(results['sequences']['track_verdicts'])

