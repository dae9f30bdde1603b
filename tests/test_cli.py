"""Config files and overrides, what the scripts say about bad input, the README's commands."""

import hashlib
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from rfp import cli, layouts
from rfp.errors import InputError
from conftest import ROOT, TINY, config_flags, mixture


@pytest.mark.parametrize('name', ['base', 'demo', 'nafp', 'grafprint', 'peaknetfp', 'nmfp'])
def test_every_config_loads_with_the_keys_tools_rely_on(name):
  c = cli.load_config(ROOT / 'configs' / f'{name}.py')
  assert c.name == name
  for key in ('data.train', 'train.epochs', 'train.batch_size', 'train.seed', 'sample.steps',
              'eval.reference', 'eval.queries', 'eval.ground_truth', 'eval.sizes',
              'eval.index.nlist', 'eval.index.nprobe'):
    node = c
    for part in key.split('.'):
      node = node[part]


def test_configs_of_a_distilled_run_sample_as_its_student():
  """A config file given to evaluate.py replaces the run's config.json, so it must
  carry the student's sampler (the teacher's 16 evaluations: 14x slower)."""
  from rfp import distill  # pylint: disable=g-import-not-at-top  (JAX)
  for name in ('demo_distill', 'demo_100m'):
    c = cli.load_config(ROOT / 'configs' / f'{name}.py')
    assert c.train.distill_from and c.sample.steps == c.train.distill_steps
    assert c.sample.solver == distill.SOLVER
  assert max(cli.load_config(ROOT / 'configs' / 'demo_100m.py').eval.sizes) == 100_000_000


def test_system_configs_carry_their_index_settings():
  assert cli.load_config(ROOT / 'configs/grafprint.py').eval.index.nlist == 64
  assert cli.load_config(ROOT / 'configs/peaknetfp.py').system.name == 'PeakNetFP'


def test_overrides_are_typed():
  rest, overrides = cli.split_overrides(['--workdir', 'w', '--config.train.epochs=3',
                                         '--config.train.lr', '1e-4',
                                         '--config.data.train=/x/y.mm',
                                         '--config.eval.sizes=[10, 20]'])
  assert rest == ['--workdir', 'w']
  c = cli.load_config(ROOT / 'configs/demo.py', overrides)
  assert (c.train.epochs, c.train.lr, c.data.train, list(c.eval.sizes)) == (3, 1e-4, '/x/y.mm', [10, 20])
  with pytest.raises(InputError, match='train.epochs=three'):
    cli.apply_override(c, 'train.epochs=three')


def test_unknown_key_names_the_key_and_the_config():
  with pytest.raises(InputError, match=r'--config.train.epoch: no such key in .*demo.py'):
    cli.load_config(ROOT / 'configs/demo.py', ['train.epoch=3'])


@pytest.mark.parametrize('name', ['nafp', 'grafprint', 'peaknetfp', 'nmfp'])
def test_every_system_config_has_the_small_size_and_keeps_the_paper_s(name):
  paper = cli.load_config(ROOT / 'configs' / f'{name}.py')
  assert (paper.model.width, paper.model.depth, paper.train.epochs) == (768, 12, 100)
  small = cli.load_config(ROOT / 'configs' / f'{name}.py', ['size=small'])
  demo = cli.load_config(ROOT / 'configs' / 'demo.py')
  for key in ('model', 'train', 'sample'):
    assert small[key].to_dict() == demo[key].to_dict(), key
  assert small.eval.index.nlist == paper.eval.index.nlist  # The system's own index.
  # The other overrides apply after the size, in any order on the command line.
  assert cli.load_config(ROOT / 'configs' / f'{name}.py',
                         ['model.width=128', 'size=small']).model.width == 128


def test_a_size_the_config_does_not_know_is_one_line():
  with pytest.raises(InputError, match=r"nmfp.py: size='tiny': expected one of paper, small"):
    cli.load_config(ROOT / 'configs/nmfp.py', ['size=tiny'])
  with pytest.raises(InputError, match=r'--config.size: no such key in .*demo.py'):
    cli.load_config(ROOT / 'configs/demo.py', ['size=small'])  # The demo is one size.


def test_one_flag_points_a_config_at_a_layout_folder(tmp_path):
  """--nmfp DIR / --nafp DIR set what configs.base.layout_paths says; the
  --config. overrides still win."""
  parser = cli.make_parser('t', 'configs/demo.py')
  cli.add_layout_flags(parser)
  _, c = cli.parse(parser, ['--nmfp', str(tmp_path), f'--config.eval.real_distractors={tmp_path}/x.mm'])
  assert c.data.train == f'{tmp_path}/train/database.mm'
  assert c.data.train_tracks == f'{tmp_path}/train/database.csv'
  assert c.eval.sequence_queries == f'{tmp_path}/queries' and c.eval.queries is None
  assert c.eval.real_distractors == f'{tmp_path}/x.mm'
  _, c = cli.parse(parser, ['--nafp', str(tmp_path)])
  assert (c.data.train, c.eval.reference) == (f'{tmp_path}/dummy_db.mm', str(tmp_path))
  assert cli.layout_overrides(parser.parse_args(['--nafp', str(tmp_path)]), sections=('eval',)) == [
      f'eval.{k}={v!r}' for k, v in (('reference', str(tmp_path)), ('reference_tracks', None),
                                      ('queries', 'data/queries.npy'),
                                      ('ground_truth', 'data/ground_truth.npy'),
                                      ('sequence_queries', None), ('sequence_ground_truth', None),
                                      ('real_distractors', 'data/distractors.npy'),
                                      ('real_distractor_tracks', None))]
  with pytest.raises(InputError, match=f'--nmfp {tmp_path}/none: folder not found'):
    cli.parse(parser, ['--nmfp', str(tmp_path / 'none')])
  with pytest.raises(InputError, match='not allowed with argument'):
    cli.parse(parser, ['--nmfp', str(tmp_path), '--nafp', str(tmp_path)])


def _run_train(tmp_path, *args):
  cmd = [sys.executable, str(ROOT / 'train.py'), '--quiet', '--workdir', str(tmp_path / 'run'),
         *args]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)


def _make_cases(tmp_path):
  rng = np.random.default_rng(0)
  good = rng.normal(size=(50, 128)).astype(np.float32)
  (tmp_path / 'short.mm').write_bytes(good[:10].tobytes())
  np.save(tmp_path / 'short_shape.npy', np.array([50, 128]))
  np.save(tmp_path / 'dim64.npy', good[:, :64])
  nan = good.copy()
  nan[3, 0] = np.nan
  np.save(tmp_path / 'nan.npy', nan)
  (tmp_path / 'empty.npy').write_bytes(b'')
  return {
      'missing.npy': 'file not found',
      'short.mm': 'does not match shape',
      'dim64.npy': 'dimension 64 but the config sets model.dim=128; pass --config.model.dim=64',
      'nan.npy': 'row 3 holds NaN or Inf',
      'empty.npy': 'file is empty',
  }


def test_bad_inputs_fail_in_one_line_and_stay_unchanged(tmp_path):
  cases = _make_cases(tmp_path)
  before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
  for name, message in cases.items():
    proc = _run_train(tmp_path, f'--config.data.train={tmp_path / name}', '--config.model.dim=128')
    assert proc.returncode == 2, (name, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in proc.stderr, (name, proc.stderr)
    assert lines[0].startswith('error: ') and name in lines[0] and message in lines[0], lines
  proc = _run_train(tmp_path, '--config.train.epoch=3')
  assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
      proc.stderr.strip()] and 'train.epoch' in proc.stderr
  after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
           for p in tmp_path.iterdir() if p.is_file()}
  assert after == {k: v for k, v in before.items() if k in after}


def test_a_track_file_of_another_training_file_fails_before_any_work(tmp_path):
  """The demo config's track file belongs to data/flow_train.npy: with the user's
  own file it is not used ('auto' finds none: blocks stand in), and one named
  for another file is refused in seconds, naming the setting."""
  x, _ = mixture(1000)
  np.save(tmp_path / 'mine.npy', x)
  np.save(tmp_path / 'tracks.npy', np.repeat(np.arange(10), 50))
  proc = _run_train(tmp_path, f'--config.data.train={tmp_path / "mine.npy"}',
                    f'--config.data.train_tracks={tmp_path / "tracks.npy"}')
  assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
  assert 'tracks.npy: 500 track ids but' in proc.stderr and 'set data.train_tracks' in proc.stderr
  assert not (tmp_path / 'run').exists()
  proc = _run_train(tmp_path, f'--config.data.train={tmp_path / "mine.npy"}',
                    *config_flags({**TINY, 'train.epochs': 1, 'model.dim': 16}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['data']['train_tracks'] is None


def test_help_describes_the_command():
  proc = subprocess.run([sys.executable, str(ROOT / 'train.py'), '--help'], capture_output=True,
                        text=True, cwd=ROOT, timeout=60)
  assert proc.returncode == 0 and '--workdir' in proc.stdout and '--config.' in proc.stdout


def test_an_unwritable_run_folder_fails_in_one_line(tmp_path):
  np.save(tmp_path / 'x.npy', mixture(1000)[0])
  (tmp_path / 'file').write_text('')
  proc = _run_train(tmp_path / 'file', f'--config.data.train={tmp_path / "x.npy"}')
  assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
  assert proc.stderr.startswith(f'error: {tmp_path / "file" / "run"}: cannot be created')


def test_an_os_error_is_one_line_as_a_last_resort(capsys):
  @cli.main
  def fails():
    raise PermissionError(13, 'Permission denied', '/somewhere/results.json')

  with pytest.raises(SystemExit) as e:
    fails()
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert err == "error: [Errno 13] Permission denied: '/somewhere/results.json'\n"


@pytest.mark.parametrize('script', ['train.py', 'sample.py', 'evaluate.py'])
def test_every_script_takes_quiet(script):
  proc = subprocess.run([sys.executable, str(ROOT / script), '--help'], capture_output=True,
                        text=True, cwd=ROOT, timeout=60)
  assert proc.returncode == 0 and '--quiet' in proc.stdout


def test_readme_commands_for_your_own_system_run_as_written(tmp_path):
  """The README's block, with its paths on a tiny 16-d folder in NMFP's layout and
  a tiny model, run by bash from the repository root, environment and all."""
  if not (ROOT / '.venv' / 'bin' / 'activate').exists():
    pytest.skip('no .venv: make setup creates it')
  x, _ = mixture(7400, dim=16)
  refs, pool, train = x[:1200], x[1200:4200], x[4200:]
  starts = np.arange(0, 1200, 20) + 2  # One 12-segment recording per 20-row track.
  noise = 0.02 * np.random.default_rng(0).normal(size=(len(starts), 12, 16))
  layouts.write_nmfp(tmp_path / 'nmfp', refs, np.repeat(np.arange(60), 20),
                     refs[starts[:, None] + np.arange(12)] + noise, starts, pool,
                     np.repeat(np.arange(100), 30), train, np.repeat(np.arange(64), 50))
  readme = (ROOT / 'README.md').read_text().split('## Your own system', 1)[1]
  block = readme.split('```bash\n', 1)[1].split('```', 1)[0].replace('\\\n', ' ')
  commands = [shlex.split(line, comments=True) for line in block.splitlines()]
  paths = {'/data/nmfp': str(tmp_path / 'nmfp'), 'runs/nmfp': str(tmp_path / 'run')}
  tiny = {'train.py': config_flags({**TINY, 'train.epochs': 2}),
          'evaluate.py': config_flags({
              'eval.sizes': [300, 1000], 'eval.num_queries': 100, 'eval.fidelity_rows': 600,
              'eval.index.nlist': 16, 'eval.index.nprobe': 16, 'eval.index.code_bytes': 8,
              'eval.index.train_rows': 2000})}
  script, used = ['set -e'], set()
  for words in commands:
    if not words or words[0] == 'make':  # `make setup` made the .venv this test needs.
      continue
    used |= {old for old in paths if any(old in w for w in words)}
    for old, new in paths.items():
      words = [w.replace(old, new) for w in words]
    flags = tiny.get(words[1] if len(words) > 1 else '', [])
    if 'configs/demo_distill.py' in words:  # Fewer teacher pairs for the tiny teacher.
      flags = flags + config_flags({'train.distill_pairs': 4096})
    script.append(shlex.join(words + flags))
  assert used == set(paths), f'the README no longer says {set(paths) - used}'
  assert script[1] == 'source .venv/bin/activate' and len(script) == 5, script
  assert '--config.size=small' in script[2], script
  assert f'--config.train.distill_from={tmp_path / "run"}' in script[3], script
  # Each command names its run folder: none may write into the repository's runs/.
  assert all(f'--workdir {tmp_path / "run"}' in line for line in script[2:]), script
  proc = subprocess.run(['bash', '-c', '\n'.join(script)], capture_output=True, text=True,
                        cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The student's evaluation reads its teacher's files (NMFP's), not the demo's.
  results = json.loads((tmp_path / 'run-distilled' / 'eval' / 'results.json').read_text())
  assert results['inputs']['dim'] == 16  # Read from the data: configs/nmfp.py sets no dimension.
  assert [p['size'] for p in results['scaling']['synthetic']] == [300, 1000]
  # The files as read: NMFP's ground truth, the track files found beside each database.
  assert results['inputs']['ground_truth'] == f'{tmp_path}/nmfp/ground_truth.csv (first segments)'
  assert results['inputs']['real_distractor_tracks'] == f'{tmp_path}/nmfp/distractors/database.csv'
  assert results['inputs']['real2_tracks'] == f'{tmp_path}/nmfp/train/database.csv'
