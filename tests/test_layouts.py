"""The systems' own layouts: written from a data folder, read back as they are."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SCRIPT_ENV, TINY, config_flags, mixture, unit_rows
from configs import base
from rfp import bounds as bounds_lib, data, layouts
from rfp.errors import InputError

DIM = 8


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
  for folder, key in (('reference', 'reference'), ('distractors', 'distractors'),
                      ('train', 'flow_train')):
    emb = data.open_embeddings(out / folder / 'database.mm')  # Its shape from database.csv.
    np.testing.assert_array_equal(emb.read(0, emb.n), arrays[key])
    np.testing.assert_array_equal(
        bounds_lib.bounds_from_ids(layouts.nmfp_track_ids(out / folder / 'database.csv')),
        bounds_lib.bounds_from_ids(arrays[f'{key}_tracks']))
  paths, truth = layouts.read_nmfp_queries(out / 'queries', out / 'ground_truth.csv',
                                           out / 'reference' / 'database.csv')
  np.testing.assert_array_equal(truth, arrays['sequence_ground_truth'])
  np.testing.assert_array_equal(np.stack([np.load(p) for p in paths]), arrays['sequence_queries'])


def test_bad_nmfp_files_are_one_line_errors(tmp_path):
  _data_folder(tmp_path / 'data')
  out = tmp_path / 'nmfp'
  layouts.write_layout('nmfp', tmp_path / 'data', out)
  csv_path = out / 'reference' / 'database.csv'
  lines = csv_path.read_text().splitlines()
  csv_path.write_text('\n'.join([lines[0], lines[1], lines[3]]) + '\n')  # A gap: rows 5-11.
  with pytest.raises(InputError, match='without gaps'):
    layouts.read_nmfp_database(csv_path)
  csv_path.write_text('name,first,last\n')
  with pytest.raises(InputError, match='header'):
    layouts.read_nmfp_database(csv_path)
  ref_csv = out / 'distractors' / 'database.csv'
  (out / 'ground_truth.csv').write_text('query_path,reference_path\nq00000.wav,ref00099.wav\n')
  with pytest.raises(InputError, match='reference ref00099 of query q00000 is not a track'):
    layouts.read_nmfp_queries(out / 'queries', out / 'ground_truth.csv', ref_csv)
  (out / 'ground_truth.csv').write_text('query_path,reference_path\nq00000.wav,dis00000.wav\n')
  with pytest.raises(InputError, match='q00001.npy: not listed'):
    layouts.read_nmfp_queries(out / 'queries', out / 'ground_truth.csv', ref_csv)
  with pytest.raises(InputError, match='no sequence_queries.npy'):
    (tmp_path / 'data' / 'sequence_queries.npy').unlink()
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
  """build_data.py --layout, then train.py and evaluate.py with the system's config."""
  _mixture_data(tmp_path / 'data')
  folder = tmp_path / layout
  run = lambda script, *args: subprocess.run(
      [sys.executable, str(ROOT / script), '--quiet', *args], capture_output=True, text=True,
      cwd=ROOT, env=SCRIPT_ENV, timeout=600)
  proc = run('build_data.py', '--layout', layout, '--out', str(tmp_path / 'data'),
             '--layout-out', str(folder))
  assert proc.returncode == 0, proc.stderr
  config = f'configs/{layout}.py'
  paths = base.layout_paths(layout, str(folder))
  proc = run('train.py', '--config', config, '--workdir', str(tmp_path / 'run'),
             *config_flags({**TINY, 'train.epochs': 1, **paths}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  proc = run('evaluate.py', '--workdir', str(tmp_path / 'run'), *config_flags({
      'eval.sizes': [300], 'eval.repeats': 1, 'eval.num_queries': 100,
      'eval.fidelity_rows': 300, 'eval.index.nlist': 8, 'eval.index.nprobe': 8,
      'eval.index.code_bytes': 8, 'eval.index.train_rows': 1000}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((tmp_path / 'run' / 'eval' / 'results.json').read_text())
  assert results['inputs']['real_distractors'].startswith(str(folder))
  # NAFP: runs of consecutive query rows, any length; NMFP: the query files' five segments.
  assert results['sequences']['lengths'] == ([1, 3, 5, 9, 19] if layout == 'nafp' else [1, 3, 5])
  real = results['scaling']['real']
  assert [p['size'] for p in real] == [300]
  # Noisy copies of the true rows: every length finds its run against a small database.
  assert real[0]['sequences']['5']['hr1']['mean'] > 0.9
  # Synthetic tracks, sampled from the run, beside the i.i.d. rows at the sequence sizes.
  assert [p['size'] for p in results['scaling']['tracks']] == [300]
  assert results['synthetic_tracks']['tracks'] and set(results['sequences']['track_verdicts'])

