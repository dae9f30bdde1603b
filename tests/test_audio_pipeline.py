"""build_data.py: its config, shorthands, and the one-line errors before any work."""

import json
import os
import stat
import subprocess
import sys

import pytest

import build_data
from rfp.audio import fingerprinter, packages, training
from rfp.audio.workdir import write_json
from audio_helpers import build_config, catalog_of, music
from conftest import ROOT


def _fake_commands(tmp_path, **scripts):
  """A folder of shell scripts named for the commands they stand in for."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name, body in scripts.items():
    fake = bin_dir / name
    fake.write_text(f'#!/bin/sh\n{body}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  return bin_dir


def test_missing_package_is_one_line_and_nonzero(tmp_path, monkeypatch, capsys):
  bin_dir = _fake_commands(tmp_path, ffmpeg='exit 1',
                           **{'apt-get': 'echo "E: Unable to locate package $2" >&2\nexit 100'})
  monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work', str(tmp_path / 'w'), '--config.build.music_packages=no-such-pkg'])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert err.count('\n') == 1 and 'Unable to locate package no-such-pkg' in err and 'hint' in err


def test_missing_ffmpeg_is_one_line_before_any_download(tmp_path, monkeypatch, capsys):
  bin_dir = _fake_commands(tmp_path, **{'apt-get': 'touch "$2"_1.0_all.deb'})
  monkeypatch.setenv('PATH', str(bin_dir))  # No ffmpeg on it.
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work', str(tmp_path / 'w'), '--config.build.music_packages=pkg'])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert err.count('\n') == 1 and 'ffmpeg: not found' in err and 'apt-get install -y ffmpeg' in err
  assert not (tmp_path / 'w' / 'debs').exists()


@pytest.mark.parametrize('flags, message', [
    (['--config.build.fp_per_track=3'], 'build.fp_per_track=3: must be even'),
    (['--config.build.fp_batch=12', '--config.build.fp_per_track=8'], 'divide build.fp_batch=12'),
    (['--config.build.fp_init=no/such/weights.npz'], 'build.fp_init=no/such/weights.npz: no such file'),
    (['--config.build.fp_mine_every=-3'], 'build.fp_mine_every=-3: must be 0 (off) or a number of steps'),
    (['--config.build.fp_loss=triplet'], 'build.fp_loss=triplet: must be one of nt-xent, query-to-database'),
    (['--replace-shipped-weights'], 'build.replace_shipped_weights: only with --retrain-fingerprinter'),
    (['--config.build.fp_step=3'], '--config.build.fp_step: no such key'),
    (['--fp-steps', '3'], 'unrecognized arguments: --fp-steps 3'),
])
def test_bad_settings_are_one_line_errors_before_any_work(tmp_path, capsys, flags, message):
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work', str(tmp_path / 'w'), *flags])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and err.count('\n') == 1 and message in err
  assert not (tmp_path / 'w').exists()  # Refused before any work.


@pytest.mark.parametrize('loss', sorted(fingerprinter.LOSSES))
def test_every_loss_is_accepted(tmp_path, capsys, loss):
  # Accepted: the refusal is the next check's, still before any work.
  with pytest.raises(SystemExit):
    build_data.main(['--work', str(tmp_path / 'w'), f'--config.build.fp_loss={loss}',
                     '--config.build.fp_per_track=3'])
  assert 'build.fp_per_track=3: must be even' in capsys.readouterr().err


def test_the_config_defaults_are_the_shipped_builds():
  build, shipped = build_config(), json.loads((ROOT / 'data' / 'metadata.json').read_text())
  assert (build.seed, build.queries) == (shipped['seed'], shipped['queries']['n'])
  assert (build.work_dir, build.out_dir, build.fp_minutes) == ('work', 'data', 150)
  assert (build.reference_rows, build.flow_rows, build.distractor_rows) == (12_000, 55_000, 75_000)
  assert (build.fp_steps, build.fp_batch, build.fp_per_track, build.fp_lr) == (4500, 64, 4, 5e-4)
  assert build.music_packages.split(',') == list(packages.MUSIC_PACKAGES)
  assert build.fp_packages is None and not build.retrain_fingerprinter and not build.replace_shipped_weights


def test_overrides_and_shorthands_reach_the_build_which_resumes_from_the_work_folder(tmp_path, capsys):
  # A work folder whose catalog is done and an output folder already built:
  # the build splits, picks the shipped weights and stops, with nothing to download.
  work, out = tmp_path / 'w', tmp_path / 'out'
  cat = catalog_of(work, [(f'track{i}', music(60.0, i), False) for i in range(8)])
  write_json(work / 'catalog.json', {'music_packages': ['pkg'], 'noise_packages': ['pkg'],
                                     'fingerprinter_packages': [], **cat, 'licenses': {}})
  out.mkdir()
  (out / 'metadata.json').write_text('{}')
  build_data.main(['--work', str(work), '--out', str(out), '--config.build.music_packages=pkg',
                   '--config.build.noise_packages=pkg', '--config.build.fp_minutes=1',
                   '--config.build.reference_rows=150', '--config.build.flow_rows', '150'])
  splits = json.loads((work / 'splits.json').read_text())
  parts = ('fingerprinter', 'reference', 'flow_train', 'distractors')
  assert [len(splits['splits'][part]) for part in parts] == [2, 2, 2, 2]  # Defaults: all 8 would train the fingerprinter.
  assert capsys.readouterr().out.splitlines()[-2:] == [
      f'fingerprinter: using {training.WEIGHTS}',
      f'export: {out}/metadata.json exists; delete it to rebuild {out}/']


def test_help_lists_the_shorthands_without_importing_jax():
  code = ('import runpy, sys\n'
          'sys.argv = ["build_data.py", "--help"]\n'
          'try:\n  runpy.run_path("build_data.py", run_name="__main__")\n'
          'except SystemExit as e:\n  assert e.code == 0, e.code\n'
          'print("jax imported" if "jax" in sys.modules else "no jax")\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True)
  assert result.stdout.rstrip().endswith('no jax')
  for text in ('--retrain-fingerprinter', '--replace-shipped-weights', '--work', '--out', 'configs/data.py',
               '--config.SECTION.KEY=VALUE'):
    assert text in result.stdout
