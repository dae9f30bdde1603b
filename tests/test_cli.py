"""Config files and overrides, and what train.py says about bad input."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from rfp import cli
from rfp.errors import InputError
from conftest import ROOT


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


def test_system_configs_carry_their_index_settings():
  assert cli.load_config(ROOT / 'configs/grafprint.py').eval.index.nlist == 64
  assert cli.load_config(ROOT / 'configs/peaknetfp.py').system.train_mean == pytest.approx(0.033622)


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
  cmd = [sys.executable, str(ROOT / 'train.py'), '--workdir', str(tmp_path / 'run'), *args]
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
      'dim64.npy': 'dimension 64, expected 128',
      'nan.npy': '1 rows contain NaN or Inf',
      'empty.npy': 'file is empty',
  }


def test_bad_inputs_fail_in_one_line_and_stay_unchanged(tmp_path):
  cases = _make_cases(tmp_path)
  before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
  for name, message in cases.items():
    proc = _run_train(tmp_path, f'--config.data.train={tmp_path / name}')
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
