"""Config files and overrides, what the scripts say about bad input, the README's commands."""

import hashlib
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from rfp import cli
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


def _mm(path, x):
  path.parent.mkdir(parents=True, exist_ok=True)
  x.astype(np.float32).tofile(path)
  np.save(path.with_name(path.stem + '_shape.npy'), np.array(x.shape))


def test_readme_commands_for_your_own_system_run_as_written(tmp_path):
  """The README's block, with its paths on a tiny 16-d NAFP-style fixture and a
  tiny model, run by bash from the repository root, environment and all."""
  if not (ROOT / '.venv' / 'bin' / 'activate').exists():
    pytest.skip('no .venv: make setup creates it')
  x, _ = mixture(7400, dim=16)
  refs, pool, train = x[:1200], x[1200:4400], x[4400:]
  queries = refs[:200] + 0.02 * np.random.default_rng(0).normal(size=(200, 16))
  for name, rows in (('db', refs), ('query', queries), ('dummy_db', pool)):
    _mm(tmp_path / 'test' / f'{name}.mm', rows)
  _mm(tmp_path / 'train' / 'dummy_db.mm', train)
  readme = (ROOT / 'README.md').read_text().split('## Your own system', 1)[1]
  block = readme.split('```bash\n', 1)[1].split('```', 1)[0].replace('\\\n', ' ')
  commands = [shlex.split(line, comments=True) for line in block.splitlines()]
  paths = {'/data/nafp/dummy_db.mm': str(tmp_path / 'train' / 'dummy_db.mm'),
           '/data/nafp/test': str(tmp_path / 'test'), 'runs/nafp': str(tmp_path / 'run'),
           '[1000000,10000000,100000000]': '[300,1000]'}
  counts = {'100000000': '2400', '64': '2'}  # Whole words: --n, --shards.
  tiny = {'train.py': config_flags({**TINY, 'train.epochs': 2}),
          'evaluate.py': config_flags({
              'eval.repeats': 2, 'eval.num_queries': 100, 'eval.fidelity_rows': 600,
              'eval.index.nlist': 16, 'eval.index.nprobe': 16, 'eval.index.code_bytes': 8,
              'eval.index.train_rows': 2000})}
  script, used = ['set -e'], set()
  for words in commands:
    if not words or words[0] == 'make':  # `make setup` made the .venv this test needs.
      continue
    used |= {old for old in paths if any(old in w for w in words)} | set(counts) & set(words)
    for old, new in paths.items():
      words = [w.replace(old, new) for w in words]
    words = [counts.get(w, w) for w in words]
    script.append(shlex.join(words + tiny.get(words[1] if len(words) > 1 else '', [])))
  missing = (set(paths) | set(counts)) - used
  assert not missing, f'the README no longer says {missing}'
  assert script[1] == 'source .venv/bin/activate' and len(script) == 5, script
  # Each command names its run folder: none may write into the repository's runs/.
  assert all(f'--workdir {tmp_path / "run"}' in line for line in script[2:]), script
  proc = subprocess.run(['bash', '-c', '\n'.join(script)], capture_output=True, text=True,
                        cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((tmp_path / 'run' / 'eval' / 'results.json').read_text())
  assert results['inputs']['dim'] == 16  # Read from the data: configs/nafp.py sets no dimension.
  assert [p['size'] for p in results['scaling']['synthetic']] == [300, 1000]
