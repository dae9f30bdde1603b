"""A run's small files: atomic JSON, refusing to mix runs, checkpoint steps, output checks."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from rfp import files
from rfp.errors import InputError


def test_write_json_is_atomic_and_leaves_no_temporary(tmp_path):
  path = tmp_path / 'x.json'
  files.write_json(path, {'a': [1, 2]})
  files.write_json(path, {'a': 3})
  assert files.read_json(path) == {'a': 3}
  assert [p.name for p in tmp_path.iterdir()] == ['x.json']


def test_atomic_path_names_the_file_only_once_it_is_complete(tmp_path):
  path = tmp_path / 'x.bin'
  path.write_bytes(b'old')
  with pytest.raises(RuntimeError):
    with files.atomic_path(path) as tmp:
      tmp.write_bytes(b'half')
      raise RuntimeError('cut off')
  assert path.read_bytes() == b'old'  # A failed write leaves the old file.
  with files.atomic_path(path, tmp=tmp_path / 'x.bin.tmp', sync=True) as tmp:
    assert tmp == tmp_path / 'x.bin.tmp'
    tmp.write_bytes(b'new')
  assert path.read_bytes() == b'new' and not tmp.exists()


def test_metrics_past_a_checkpoint_are_dropped_on_resume(tmp_path):
  assert files.truncate_metrics(tmp_path, 10) == [] and files.read_metrics(tmp_path) == []
  for step in (5, 10, 15):
    files.append_metrics(tmp_path, {'step': step, 'loss': 1.0 / step})
  assert files.truncate_metrics(tmp_path, 10) == [{'step': 5, 'loss': 0.2}, {'step': 10, 'loss': 0.1}]
  assert files.read_metrics(tmp_path) == files.truncate_metrics(tmp_path, 10)


def test_mixing_runs_is_refused_with_the_changed_leaves():
  old = {'model': {'width': 128, 'depth': 2}, 'train': {'seed': 0, 'epochs': 3}}
  files.check_same_settings('run', old, old, ('model', 'train.seed'), 'a run', '--workdir')
  new = {'model': {'width': 128, 'depth': 3}, 'train': {'seed': 1, 'epochs': 9}}
  with pytest.raises(InputError, match=r'^run: holds a run made with other settings '
                     r'\(model.depth 2 -> 3, train.seed 0 -> 1\); use another --workdir'):
    files.check_same_settings('run', old, new, ('model', 'train.seed'), 'a run', '--workdir')


def test_checkpoint_step_reads_orbax_folders_without_orbax(tmp_path):
  assert files.checkpoint_step(tmp_path, 'best') is None
  for step in ('40', '120', 'tmp-7'):
    (tmp_path / 'ckpt' / 'best' / step).mkdir(parents=True)
  assert files.checkpoint_step(tmp_path, 'best') == 120


def test_run_files_name_the_folder(tmp_path):
  with pytest.raises(InputError, match='run folder not found'):
    files.read_config(tmp_path / 'nope')
  with pytest.raises(InputError, match='no config.json; is this a folder written by train.py'):
    files.read_config(tmp_path)
  with pytest.raises(InputError, match='no trained runs found'):
    files.latest_run(tmp_path)


def test_output_folders_are_checked_before_any_work(tmp_path, monkeypatch):
  files.check_output(tmp_path / 'new' / 'deeper', 10)  # Creatable: fine, and not created.
  assert not (tmp_path / 'new').exists()
  (tmp_path / 'file').write_text('')
  with pytest.raises(InputError, match=r'/file/out: cannot be created: .*/file is a file'):
    files.check_output(tmp_path / 'file' / 'out')
  with pytest.raises(InputError, match=r'/file: exists and is not a folder'):
    files.check_output(tmp_path / 'file')
  usage = files.shutil.disk_usage(tmp_path)
  monkeypatch.setattr(files.shutil, 'disk_usage', lambda _: usage._replace(free=1500))
  files.check_output(tmp_path, 1500)
  with pytest.raises(InputError, match=r': the report files need 2.0 kB but only 1.5 kB is free'):
    files.check_output(tmp_path / 'out', 2000, what='the report files')


def test_a_read_only_folder_is_refused(tmp_path):
  (tmp_path / 'ro').mkdir()
  (tmp_path / 'ro').chmod(0o555)
  try:
    if os.access(tmp_path / 'ro', os.W_OK):
      pytest.skip('running as root: permission bits do not stop writes')
    with pytest.raises(InputError, match=r'/ro/out: cannot write there \(.*/ro is not writable\)'):
      files.check_output(tmp_path / 'ro' / 'out')
  finally:
    (tmp_path / 'ro').chmod(0o755)


def test_evaluate_help_and_its_modules_do_not_import_jax():
  code = ('import sys; sys.argv = ["evaluate.py", "--help"]\n'
          'import evaluate\n'
          'from rfp.evaluation import results, fidelity, hardness, inputs, scaling\n'
          'from rfp import report, sample_folder, files\n'
          'try:\n  evaluate.main()\nexcept SystemExit:\n  pass\n'
          'print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "orbax", "flax")))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       check=True)
  assert 'usage: evaluate.py' in out.stdout
  assert out.stdout.strip().splitlines()[-1] == '[]', out.stdout[-500:]
