"""evaluate.py end to end on small fixtures: results, reports, refusals, read-only inputs."""

import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import evaluate
from conftest import ROOT, mixture, tiny_config
from rfp import sample_folder
from rfp.evaluation import scaling

DIM = 16
N_REFS, TRACK_LEN, N_QUERIES, N_POOL, N_TRAIN, N_SYNTHETIC = 1200, 20, 150, 3000, 3000, 6000
SEGMENTS, N_SEQUENCES = 5, 60


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _write_shards(folder, x, n_shards=2, dtype='float16'):
  """A sample folder in rfp.sample_folder's layout (manifest + shard-NNNNN.npy)."""
  folder.mkdir(parents=True)
  parts = np.array_split(x.astype(dtype), n_shards)
  for i, part in enumerate(parts):
    np.save(sample_folder.shard_path(folder, i), part)
  (folder / 'manifest.json').write_text(json.dumps({
      'n': len(x), 'shards': n_shards, 'rows_per_shard': [len(p) for p in parts],
      'dim': x.shape[1], 'dtype': dtype}))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """Eval files on one 16-d mixture (the trained_run's distribution), a run folder."""
  root = tmp_path_factory.mktemp('eval_data')
  rng = np.random.default_rng(0)
  x, _ = mixture(N_REFS + N_POOL + N_TRAIN + N_SYNTHETIC, dim=DIM, seed=0)
  refs, pool, train, synthetic = np.split(x, np.cumsum([N_REFS, N_POOL, N_TRAIN]))
  gt = np.sort(rng.choice(N_REFS, N_QUERIES, replace=False))
  queries = _unit(refs[gt] + 0.05 * rng.normal(size=(N_QUERIES, DIM)))
  files = {'reference': refs, 'queries': queries, 'real_distractors': pool}
  paths = {}
  for name, array in files.items():
    paths[name] = root / f'{name}.npy'
    np.save(paths[name], array)
  paths['ground_truth'] = root / 'ground_truth.npy'
  np.save(paths['ground_truth'], gt)
  paths['reference_tracks'] = root / 'reference_tracks.npy'
  np.save(paths['reference_tracks'], np.repeat(np.arange(N_REFS // TRACK_LEN), TRACK_LEN))
  paths['real_distractor_tracks'] = root / 'pool_tracks.npy'
  np.save(paths['real_distractor_tracks'], np.repeat(np.arange(N_POOL // 30), 30))
  # Multi-segment queries: noisy copies of runs of SEGMENTS rows inside one track.
  starts = rng.choice(np.flatnonzero(np.arange(N_REFS) % TRACK_LEN <= TRACK_LEN - SEGMENTS),
                      N_SEQUENCES, replace=False)
  paths['sequence_queries'] = root / 'sequence_queries.npy'
  np.save(paths['sequence_queries'], _unit(refs[starts[:, None] + np.arange(SEGMENTS)]
                                           + 0.05 * rng.normal(size=(N_SEQUENCES, SEGMENTS, DIM))))
  paths['sequence_ground_truth'] = root / 'sequence_ground_truth.npy'
  np.save(paths['sequence_ground_truth'], starts)
  np.save(root / 'train.npy', train)
  np.save(root / 'train_tracks.npy', np.repeat(np.arange(N_TRAIN // 50), 50))
  _write_shards(root / 'synthetic', synthetic)
  workdir = root / 'run'
  workdir.mkdir()
  config = tiny_config(root / 'train.npy', dim=DIM,
                       **{'data.train_tracks': str(root / 'train_tracks.npy')})
  (workdir / 'config.json').write_text(config.to_json())
  return root, workdir, paths


def _overrides(paths, synthetic, **extra):
  items = {**{f'eval.{k}': str(v) for k, v in paths.items()},
           'eval.synthetic': str(synthetic), 'eval.sizes': [300, 2000, 5000], 'eval.repeats': 2,
           'eval.num_queries': 100, 'eval.fidelity_rows': 600, 'eval.index.nlist': 16,
           'eval.index.nprobe': 16, 'eval.index.code_bytes': 8, 'eval.index.k': 20,
           'eval.index.train_rows': 2000, 'eval.query_lengths': [1, 3, 5, 9],
           'eval.num_sequence_queries': N_SEQUENCES, 'eval.tracks': False, **extra}
  return [f'--config.{k}={v}' for k, v in items.items()]


def _checksums(folder):
  return {p: hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(pathlib.Path(folder).rglob('*')) if p.is_file()}


def test_evaluate_end_to_end_leaves_inputs_untouched(dataset, tmp_path, capsys):
  root, workdir, paths = dataset
  before = _checksums(root)
  evaluate.main(['--workdir', str(workdir), '--out', str(tmp_path / 'out'), '--quiet',
                 *_overrides(paths, root / 'synthetic')])
  console = capsys.readouterr()
  assert console.err == ''  # --quiet: no progress bars.
  assert _checksums(root) == before
  for name in ('results.json', 'report.md', 'scaling.png', 'embedding.png'):
    assert (tmp_path / 'out' / name).stat().st_size > 0
  results = json.loads((tmp_path / 'out' / 'results.json').read_text())
  curves = results['scaling']
  assert [p['size'] for p in curves['real']] == [300, 2000, 3000]  # Pool of 3,000 rows.
  assert [p['size'] for p in curves['synthetic']] == [300, 2000, 3000, 5000]
  assert [p['size'] for p in curves['real2']] == [300, 2000, 3000]
  assert any('real curve ends with the whole pool' in n for n in results['notes'])
  assert any('share rows' in n for n in results['notes'])  # 2 x 5,000 > 6,000 synthetic.
  assert [p['shared_rows'] for p in curves['synthetic']] == [False, False, False, True]
  assert [p['shared_rows'] for p in curves['real']] == [False, False, True]  # The whole pool.
  for kind in ('real', 'synthetic'):
    for point in curves[kind]:
      assert len(point['repeats']) == 2
      for key in ('hr1', 'topk', 'track1', 'near1', 'hard'):
        assert 0 <= point[key]['mean'] <= 1
      assert point['hr1']['mean'] <= point['near1']['mean'] <= point['track1']['mean']
  # Synthetic rows come from the real distribution here, so they are as hard as real ones.
  for r, s in zip(curves['real'], curves['synthetic']):
    assert abs(r['hard']['mean'] - s['hard']['mean']) < 0.15
  pairs = results['fidelity']['pairs']
  assert abs(pairs['synthetic_vs_real']['js'] - pairs['real2_vs_real']['js']) < 0.1
  assert pairs['gaussian_vs_real']['js'] > 0.65
  assert pairs['matched_gaussian_vs_real']['fd'] < 0.1 * pairs['gaussian_vs_real']['fd']
  t = results['table3']
  assert (t['size_lo'], t['size_hi']) == (300, 5000)
  report = (tmp_path / 'out' / 'report.md').read_text()
  assert 'FD sees only means and covariances' in report and 'Degradation %' in report
  # Every rate ± its standard error, † where the repeats shared rows; no density of
  # 1,000 against N(0, I).
  rows = {tuple(c.strip() for c in line.split('|')[1:3]): line for line in report.splitlines()
          if line.startswith('| ')}
  assert ' ± ' in rows['5,000', 'synthetic'] and '†' in rows['5,000', 'synthetic']
  assert '†' in rows['3,000', 'real'] and '†' not in rows['2,000', 'real']
  assert ' ± ' in results['verdict']['text'] and results['verdict']['difference_se'] > 0
  assert "**The field's figures at 3,000 distractors**" in report
  assert pairs['synthetic_vs_gaussian']['density'] is None
  assert 'S ‖ G: no precision, recall, density or coverage' in report
  # Multi-segment queries at the real curve's sizes, for every kind; 9 segments are
  # longer than the queries, so they are noted and left out.
  seq = results['sequences']
  assert seq['lengths'] == [1, 3, 5] and seq['queries'] == N_SEQUENCES
  assert any('lengths 9 not evaluated' in n for n in results['notes'])
  for kind in ('real', 'synthetic', 'real2'):
    assert [p['size'] for p in curves[kind] if 'sequences' in p] == [300, 2000, 3000]
  for point in curves['real']:
    for n in ('1', '3', '5'):
      stats = point['sequences'][n]
      assert stats['hr1']['mean'] <= stats['near1']['mean'] <= stats['track1']['mean']
      assert stats['hr1']['mean'] <= stats['top3']['mean'] <= stats['top10']['mean']
      # At least the query sample's binomial error, over N_SEQUENCES queries.
      for key in ('hr1', 'hard'):
        rate = stats[key]['mean']
        assert np.sqrt(rate * (1 - rate) / N_SEQUENCES) <= stats[key]['se'] + 1e-12 < 0.1
  # Longer queries are harder to beat: hardness falls with length.
  assert curves['real'][-1]['sequences']['5']['hard']['mean'] <= \
      curves['real'][-1]['sequences']['1']['hard']['mean']
  assert set(seq['verdicts']) == {'1', '3', '5'}
  assert '### 5 segments (3 s)' in report and (tmp_path / 'out' / 'sequences.png').stat().st_size
  assert f'synthetic rows 1 s {seq["verdicts"]["1"]["status"]}, 2 s' in report
  # The extreme-value estimate from the real pool at every synthetic size, and
  # the back-test of it, a line and the synthetic rows at half and all the pool.
  tail = results['tail']
  assert list(tail['hardness']) == ['3000', '5000']  # From the pool on.
  assert tail['fit_rows'] == 3000 and set(tail['backtest']['truth']) == {'1500', '3000'}
  assert tail['backtest']['truth']['3000'] == pytest.approx(curves['real'][-1]['hard']['mean'])
  assert set(tail['backtest']['errors']) == {'extreme_value', 'log_line', 'synthetic'}
  assert all(0 <= f['lo'] <= f['hi'] <= 1 for f in tail['hardness'].values())
  assert '## Past the real pool: an extreme-value estimate' in report and '**Back-test.**' in report
  assert set(tail['sequences']) == {'1', '3', '5'}  # Per length, each track's best run.
  assert list(tail['sequences']['3']) == ['3000', '5000']
  assert 'Extreme-value estimate (each track\'s best run' in report
  verdict = results['verdict']
  assert verdict['size'] == 3000 and f'verdict: {verdict["text"]}' in console.out
  assert 'extreme-value estimate at 5,000: hardness' in console.out


def test_shared_index_training_serves_every_point(dataset, tmp_path, capsys):
  root, workdir, paths = dataset
  evaluate.main(['--workdir', str(workdir), '--out', str(tmp_path / 'out'),
                 *_overrides(paths, root / 'synthetic', **{
                     'eval.sizes': [300, 2000], 'eval.repeats': 1,
                     'eval.index.shared_training': True})])
  # Every long phase shows progress, the shared index's training too (it has no steps).
  progress = capsys.readouterr().err
  for phase in ('NaN/Inf check', 'fidelity', 'training the shared index on 2,000 rows', 'scaling'):
    assert phase in progress, phase
  results = json.loads((tmp_path / 'out' / 'results.json').read_text())
  points = [p for kind in ('real', 'synthetic') for c in results['scaling'][kind]
            for p in c['repeats']]
  assert len(points) == 4
  # One codebook, trained on references + real rows, behind every database.
  assert len({json.dumps(p['index'], sort_keys=True) for p in points}) == 1
  assert points[0]['index']['train_rows'] == 2000
  for r, s in zip(results['scaling']['real'], results['scaling']['synthetic']):
    assert abs(r['hr1']['mean'] - s['hr1']['mean']) < 0.15
  report = (tmp_path / 'out' / 'report.md').read_text()
  assert 'trained on up to 2,000 rows once' in report
  assert 'standard error over the query sample (binomial, √(p(1 − p)/n)), one distractor set per size' in report
  assert re.search(r'\d ± \d', report)  # The query sample's error, even for one draw.


def _without_timings(tree):
  if isinstance(tree, dict):
    return {k: _without_timings(v) for k, v in tree.items() if k != 'seconds'}
  return [_without_timings(v) for v in tree] if isinstance(tree, list) else tree


def test_an_interrupted_evaluation_resumes_after_its_last_finished_point(
    dataset, tmp_path, monkeypatch):
  root, workdir, paths = dataset
  flags = ['--workdir', str(workdir), '--quiet', *_overrides(
      paths, root / 'synthetic', **{'eval.sizes': [300, 2000], 'eval.repeats': 1,
                                    'eval.index.shared_training': True})]
  evaluate.main([*flags, '--out', str(tmp_path / 'whole')])
  measured = []
  point = scaling.retrieval_point

  def interrupted_after_two(*args, **kwargs):
    if len(measured) == 2:
      raise KeyboardInterrupt
    measured.append(args[1].n)
    return point(*args, **kwargs)

  monkeypatch.setattr(scaling, 'retrieval_point', interrupted_after_two)
  with pytest.raises(SystemExit) as stop:
    evaluate.main([*flags, '--out', str(tmp_path / 'cut')])
  assert stop.value.code == 130 and not (tmp_path / 'cut' / 'results.json').exists()
  assert len(list((tmp_path / 'cut' / 'points').glob('*.json'))) == 2
  # The re-run measures only what was left: the real curve's two points are kept.
  measured.clear()
  monkeypatch.setattr(scaling, 'retrieval_point', lambda *a, **k: measured.append(a[1].n) or
                      point(*a, **k))
  evaluate.main([*flags, '--out', str(tmp_path / 'cut')])
  assert measured == [300, 2000]  # The synthetic curve.
  whole, resumed = (json.loads((tmp_path / d / 'results.json').read_text())['scaling']
                    for d in ('whole', 'cut'))
  assert _without_timings(resumed) == _without_timings(whole)
  # Points of other settings are measured again, not reused.
  measured.clear()
  evaluate.main([*flags, '--out', str(tmp_path / 'cut'), '--config.eval.num_queries=90'])
  assert len(measured) == 4


def _nafp_folder(root, refs, queries, pool):
  folder = root / 'nafp'
  folder.mkdir()
  for name, array in (('db', refs), ('query', queries), ('dummy_db', pool)):
    array.astype(np.float32).tofile(folder / f'{name}.mm')
    np.save(folder / f'{name}_shape.npy', np.array(array.shape))
  return folder


def test_nafp_folder(dataset, tmp_path):
  root, workdir, paths = dataset
  refs, pool = np.load(paths['reference']), np.load(paths['real_distractors'])
  rng = np.random.default_rng(1)
  queries = _unit(refs[:200] + 0.05 * rng.normal(size=(200, DIM)))  # Query i is db row i.
  folder = _nafp_folder(tmp_path, refs, queries, pool)
  before = _checksums(folder)
  evaluate.main(['--workdir', str(workdir), '--out', str(tmp_path / 'out'), '--quiet',
                 '--nafp', str(folder), *_overrides({}, root / 'synthetic',
                                                   **{'eval.sizes': [500], 'eval.repeats': 1})])
  assert _checksums(folder) == before
  results = json.loads((tmp_path / 'out' / 'results.json').read_text())
  assert results['inputs']['real_distractors'].endswith('dummy_db.mm')
  assert 'NAFP' in results['inputs']['ground_truth']
  assert 'track1' not in results['scaling']['real'][0]
  assert results['scaling']['real'][0]['hr1']['mean'] > 0.5
  # Multi-segment queries are runs of consecutive query rows, db row i for query row i.
  seq = results['scaling']['real'][0]['sequences']
  assert results['sequences']['lengths'] == [1, 3, 5, 9] and seq['9']['hr1']['mean'] > 0.9


def _cli(*args):
  return subprocess.run([sys.executable, str(ROOT / 'evaluate.py'), '--quiet', *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)


def _bad_file(root, name, array):
  path = root / name
  np.save(path, array)
  return path


@pytest.mark.parametrize('case,message', [
    ('gt_out_of_range', 'outside the 1200 rows'),
    ('gt_missing', 'file not found; queries need ground truth'),
    ('gt_length', 'has 149 entries but'),
    ('dim_mismatch', 'have dimension 8 but the references'),
    ('real_size_beyond_pool', '5,000 real distractors asked for'),
    ('pool_nan_row', 'pool.npy: row 1234 holds NaN or Inf'),
    ('pool_every_tenth_row_nan', 'pool.npy: row 9 holds NaN or Inf'),
    ('synthetic_inf', 'shard-00001.npy: row 17 holds NaN or Inf'),
    ('second_real_set_nan', 'train.npy: row 42 holds NaN or Inf'),
    ('out_unwritable', 'file/out: cannot be created'),
])
def test_bad_inputs_fail_in_one_line(dataset, tmp_path, case, message):
  """Each before any figure is computed (the NaN checks precede fidelity and faiss)."""
  root, workdir, paths = dataset
  paths, extra, synthetic, args = dict(paths), {}, root / 'synthetic', []
  gt = np.load(paths['ground_truth'])
  pool = np.load(paths['real_distractors'])
  if case == 'gt_out_of_range':
    gt[3] = N_REFS
    paths['ground_truth'] = _bad_file(tmp_path, 'gt.npy', gt)
  elif case == 'gt_missing':
    paths['ground_truth'] = tmp_path / 'missing.npy'
  elif case == 'gt_length':
    paths['ground_truth'] = _bad_file(tmp_path, 'gt.npy', gt[:-1])
  elif case == 'dim_mismatch':
    paths['queries'] = _bad_file(tmp_path, 'q.npy', _unit(np.ones((N_QUERIES, 8))))
  elif case == 'real_size_beyond_pool':
    extra['eval.real_sizes'] = [1000, 5000]
  elif case.startswith('pool_'):
    if case == 'pool_every_tenth_row_nan':
      pool[9::10] = np.nan
    pool[1234, 5] = np.nan
    paths['real_distractors'] = _bad_file(tmp_path, 'pool.npy', pool)
  elif case == 'synthetic_inf':
    synthetic = tmp_path / 'synthetic'
    shutil.copytree(root / 'synthetic', synthetic)
    shard = np.load(sample_folder.shard_path(synthetic, 1))
    shard[17, 3] = np.inf
    np.save(sample_folder.shard_path(synthetic, 1), shard)
  elif case == 'second_real_set_nan':
    train = np.load(root / 'train.npy')
    train[42] = np.nan
    run = json.loads((workdir / 'config.json').read_text())
    run['data']['train'] = str(_bad_file(tmp_path, 'train.npy', train))
    workdir = tmp_path / 'run'
    workdir.mkdir()
    (workdir / 'config.json').write_text(json.dumps(run))
  else:
    (tmp_path / 'file').write_text('')
    args = ['--out', str(tmp_path / 'file' / 'out')]
  result = _cli('--workdir', str(workdir), *args, *_overrides(paths, synthetic, **extra))
  assert result.returncode == 2, result.stderr
  assert 'Traceback' not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], lines
  assert not (workdir / 'eval').exists()


def test_samples_from_the_run_when_no_synthetic_folder(trained_run, dataset, tmp_path):
  """Without eval.synthetic, rows are sampled into WORKDIR/samples, then reused."""
  _, _, paths = dataset
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run[0], workdir)
  args = ['--workdir', str(workdir), '--quiet',
          *_overrides(paths, None, **{'eval.sizes': [500], 'eval.repeats': 2,
                                      'eval.tracks': True})]
  evaluate.main(args)
  first = json.loads((workdir / 'eval' / 'results.json').read_text())
  assert first['synthetic']['sampled_now'] and first['synthetic']['rows'] == 1000
  assert first['synthetic']['folder'] == str(workdir / 'samples')
  # Synthetic tracks for the multi-segment curve: 2 repeats of the one sequence size.
  tracks = first['synthetic_tracks']
  assert tracks['tracks'] and tracks['rows'] == 1000 and tracks['sampled_now']
  assert tracks['folder'] == str(workdir / 'samples-tracks')
  assert [p['size'] for p in first['scaling']['tracks']] == [500]
  evaluate.main(args)
  second = json.loads((workdir / 'eval' / 'results.json').read_text())
  assert not second['synthetic']['sampled_now'] and not second['synthetic_tracks']['sampled_now']
  # Each phase's time is recorded, and sampling only when it was done; rows the
  # sampler checked as it wrote them are not read again for NaN/Inf.
  assert {'synthetic_sample', 'fidelity', 'scaling'} <= set(first['seconds'])
  assert 'synthetic_sample' not in second['seconds']
  assert 'synthetic_check' not in first['seconds'] and 'synthetic_check' not in second['seconds']
  assert second['table3'] == first['table3']
  assert second['scaling']['tracks'][0]['sequences'] == first['scaling']['tracks'][0]['sequences']


def test_index_built_in_parts_serves_the_whole_synthetic_point(dataset, tmp_path):
  """--index-step train, add (two parts, as two processes would), merge; then the
  sweep searches the merged index where the database holds every synthetic row."""
  root, workdir, paths = dataset
  index_dir = tmp_path / 'index'
  flags = ['--workdir', str(workdir), '--quiet', *_overrides(paths, root / 'synthetic', **{
      'eval.sizes': [300, N_SYNTHETIC], 'eval.repeats': 1, 'eval.query_lengths': []})]
  for step in (['train'], ['add', '--part', '0', '--parts', '2'],
               ['add', '--part', '1', '--parts', '2'], ['merge']):
    evaluate.main([*flags, '--index-dir', str(index_dir), '--index-step', *step])
  assert sorted(p.name for p in index_dir.glob('*.index')) == [
      'merged.index', 'part-00000-of-00002.index', 'part-00001-of-00002.index', 'trained.index']
  evaluate.main([*flags, '--index-dir', str(index_dir), '--out', str(tmp_path / 'parts')])
  evaluate.main([*flags, '--out', str(tmp_path / 'one')])
  parts, one = (json.loads((tmp_path / name / 'results.json').read_text())['scaling']['synthetic']
                for name in ('parts', 'one'))
  assert parts[-1]['size'] == N_SYNTHETIC
  assert parts[-1]['repeats'][0]['index']['inverted_lists'] == 'on disk'
  assert 'inverted_lists' not in parts[0]['repeats'][0]['index']  # Smaller sizes: built as ever.
  # Exact hardness is the same database either way; the index only approximates.
  assert parts[-1]['hard'] == one[-1]['hard']
  assert abs(parts[-1]['hr1']['mean'] - one[-1]['hr1']['mean']) < 0.05


def test_a_large_whole_synthetic_point_is_built_in_parts_in_process(dataset, tmp_path):
  """Past eval.index.part_rows the point of every synthetic row is built in parts
  beside the finished points, with the one-pass build's exact hardness; its
  folder is gone once the point is kept."""
  root, workdir, paths = dataset
  flags = ['--workdir', str(workdir), '--quiet', *_overrides(paths, root / 'synthetic', **{
      'eval.sizes': [300, N_SYNTHETIC], 'eval.repeats': 1, 'eval.query_lengths': []})]
  evaluate.main([*flags, '--out', str(tmp_path / 'parts'), '--config.eval.index.part_rows=1500'])
  evaluate.main([*flags, '--out', str(tmp_path / 'one')])
  parts, one = (json.loads((tmp_path / name / 'results.json').read_text())['scaling']['synthetic']
                for name in ('parts', 'one'))
  assert parts[-1]['repeats'][0]['index']['inverted_lists'] == 'on disk'
  assert 'inverted_lists' not in one[-1]['repeats'][0]['index']
  assert parts[-1]['hard'] == one[-1]['hard']
  assert abs(parts[-1]['hr1']['mean'] - one[-1]['hr1']['mean']) < 0.05
  assert not list((tmp_path / 'parts' / 'points').glob('*.index'))


def test_rows_checked_as_sampled_are_still_checked_as_they_are_read(dataset, tmp_path):
  """A folder whose sampler checked every row is not read in a pass of its own,
  but a row changed since stops the evaluation in one line as the sweep reads it."""
  root, workdir, paths = dataset
  synthetic = tmp_path / 'synthetic'
  shutil.copytree(root / 'synthetic', synthetic)
  manifest = json.loads((synthetic / 'manifest.json').read_text())
  (synthetic / 'manifest.json').write_text(json.dumps({**manifest, 'checked_finite': True}))
  shard = np.load(sample_folder.shard_path(synthetic, 1))
  shard[17, 3] = np.nan
  np.save(sample_folder.shard_path(synthetic, 1), shard)
  result = _cli('--workdir', str(workdir), '--out', str(tmp_path / 'out'),
                *_overrides(paths, synthetic))
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'shard-00001.npy: row 17 holds NaN or Inf' in lines[0], lines
