"""Shared fixtures. Four CPU devices, so data-parallel paths run in every test."""

import jax

jax.config.update('jax_num_cpu_devices', 4)

import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import signal  # pylint: disable=g-import-not-at-top,wrong-import-position
import subprocess  # pylint: disable=g-import-not-at-top,wrong-import-position
import time  # pylint: disable=g-import-not-at-top,wrong-import-position

import numpy as np
import pytest

from rfp import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The scripts run as subprocesses see four devices too: the trained_run
# fixture's checkpoints were saved from four.
SCRIPT_ENV = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
              'PYTHONPATH': str(ROOT)}


def kill_when(cmd, ready, timeout=300):
  """Runs `cmd` (a script, in the repository root) and kills it with SIGKILL,
  as a crash would, as soon as `ready()` holds."""
  proc = subprocess.Popen(cmd, env=SCRIPT_ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + timeout
  while not ready() and proc.poll() is None:
    assert time.monotonic() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()


def unit_rows(n, dim=128, seed=0, dtype=np.float32):
  """`[n, dim]` random unit-norm rows."""
  x = np.random.default_rng(seed).normal(size=(n, dim))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def mixture(n, dim=16, modes=8, spread=0.08, seed=0):
  """Unit-norm rows around `modes` fixed centres; returns (rows [n, dim], centres).

  The centres are the same for every `seed`; `seed` draws the rows.
  """
  centres = np.random.default_rng(1234).normal(size=(modes, dim))
  rng = np.random.default_rng(seed)
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = rng.integers(modes, size=n)
  x = centres[labels] + spread * rng.normal(size=(n, dim))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x.astype(np.float32), centres.astype(np.float32)


TINY = {'model.width': 128, 'model.depth': 2, 'model.hidden': 256, 'train.epochs': 6,
        'train.batch_size': 128, 'train.lr': 3e-3, 'train.warmup_steps': 10,
        'train.val_samples': 256, 'train.log_every': 10, 'sample.steps': 8,
        'sample.solver': 'euler', 'sample.batch_size': 256}


def tiny_items(train_path, dim=16, **overrides):
  """{key: value} that shrink the demo config to a model that trains in seconds."""
  return {'data.train': str(train_path), 'data.train_tracks': None, 'model.dim': dim, **TINY,
          **overrides}


def config_flags(items):
  """`--config.KEY=VALUE` flags setting `items` on a command line."""
  return [f'--config.{key}={value!r}' for key, value in items.items()]


def tiny_config(train_path, dim=16, **overrides):
  """The demo config shrunk to a model that trains in seconds."""
  config = cli.load_config(ROOT / 'configs' / 'demo.py')
  for key, value in tiny_items(train_path, dim, **overrides).items():
    cli.apply_override(config, f'{key}={value!r}')
  return config


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory):
  """A tiny model trained on a 16-d mixture: (workdir, train_rows, centres)."""
  from rfp import training  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('run')
  x, centres = mixture(4000)
  np.save(root / 'train.npy', x)
  workdir = root / 'workdir'
  training.train_and_evaluate(tiny_config(root / 'train.npy'), workdir)
  return workdir, x, centres


@pytest.fixture(scope='session')
def million_row_memmap(tmp_path_factory):
  """A 1M x 128 float32 NAFP-style `.mm` (488 MiB) of unit-norm rows."""
  root = tmp_path_factory.mktemp('big')
  path = root / 'dummy_db.mm'
  rng = np.random.default_rng(0)
  with open(path, 'wb') as f:
    for _ in range(10):
      x = rng.normal(size=(100_000, 128)).astype(np.float32)
      (x / np.linalg.norm(x, axis=1, keepdims=True)).tofile(f)
  np.save(root / 'dummy_db_shape.npy', np.array([1_000_000, 128]))
  return path
