"""Files written atomically (`atomic_path`), and the small files a run leaves.

    WORKDIR/config.json      the config the run was trained with
    WORKDIR/stats.json       normalisation statistics and a summary of the data
    WORKDIR/ckpt/{latest,best}/STEP/   orbax checkpoints (`rfp.checkpoint`)
    WORKDIR/metrics.jsonl    one JSON record per epoch

Imports neither JAX nor orbax, so evaluation and every `--help` start fast.
"""

import contextlib
import json
import os
import pathlib
import shutil
import socket

from rfp.errors import InputError

METRICS = 'metrics.jsonl'


@contextlib.contextmanager
def atomic_path(path, tmp=None, sync=False):
  """The name to write `path` under: `path` appears, complete, only once the
  block ends without an error, so a reader never sees half a file.

  The temporary name is per host and process (several hosts may write into
  one shared folder) unless `tmp` names it; with `sync` the file is on disk
  before it takes its name, so a crash leaves either the old file or the
  new one. A block that fails leaves the temporary file behind.
  """
  path = pathlib.Path(path)
  if tmp is None:
    tmp = path.with_name(f'{path.name}.{socket.gethostname()}.{os.getpid()}.tmp')
  yield tmp
  if sync:
    with open(tmp, 'rb+') as f:
      os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path, obj, indent=2, end='\n'):
  """Writes JSON atomically (`atomic_path`). `indent` and `end` keep files
  whose layout is fixed byte for byte (the shipped data's metadata)."""
  with atomic_path(path) as tmp:
    tmp.write_text(json.dumps(obj, indent=indent) + end)


def size_text(nbytes):
  for unit in ('B', 'kB', 'MB', 'GB'):
    if nbytes < 1000:
      break
    nbytes /= 1000
  else:
    unit = 'TB'
  return f'{nbytes:.1f} {unit}'


def check_output(folder, needed=0, what='its files', hint='free some space or write elsewhere'):
  """Refuses an output folder that cannot be created or written, or whose disk
  has fewer than `needed` bytes free: one InputError naming `folder`. Returns
  the bytes free there.

  Every command calls it before its work starts, so hours of work never end
  in a failed write. It creates nothing: where `folder` does not exist yet,
  its nearest existing parent is what must be a writable folder.
  """
  folder = pathlib.Path(folder)
  existing = folder.absolute()
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    problem = ('exists and is not a folder' if existing == folder.absolute()
               else f'cannot be created: {existing} is a file')
    raise InputError(f'{folder}: {problem}; write elsewhere')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise InputError(f'{folder}: cannot write there ({existing} is not writable); write elsewhere')
  free = shutil.disk_usage(existing).free
  if needed > free:
    raise InputError(f'{folder}: {what} need {size_text(needed)} but only {size_text(free)} '
                     f'is free; {hint}')
  return free


def read_json(path):
  return json.loads(pathlib.Path(path).read_text())


def field(tree, key):
  """`tree['a']['b']` for key 'a.b'; None where any part is missing."""
  node = tree
  for part in key.split('.'):
    node = node.get(part) if isinstance(node, dict) else None
  return node


def _brief(value):
  text = str(value)
  return text if len(text) <= 40 else text[:37] + '...'


def _changed_leaves(a, b, key):
  """Dotted keys under `key` where `a` and `b` differ, down to the leaves."""
  if a == b:
    return []
  if isinstance(a, dict) and isinstance(b, dict):
    return [leaf for k in sorted(set(a) | set(b), key=str)
            for leaf in _changed_leaves(a.get(k), b.get(k), f'{key}.{k}')]
  return [key]


def check_same_settings(folder, old, new, keys, holds, flag):
  """Refuses to mix two runs: InputError if `old` and `new` differ in any of `keys`.

  `holds` says what the folder holds ('a run', 'samples'), `flag` which
  option picks another folder.
  """
  changed = [leaf for k in keys for leaf in _changed_leaves(field(old, k), field(new, k), k)]
  if changed:
    shown = ', '.join(f'{k} {_brief(field(old, k))} -> {_brief(field(new, k))}'
                      for k in changed[:4])
    raise InputError(f'{folder}: holds {holds} made with other settings ({shown}); '
                     f'use another {flag} or delete that folder')


def read_metrics(workdir):
  """A run's metrics.jsonl: one record per validated epoch ([] before the first)."""
  path = pathlib.Path(workdir) / METRICS
  return [json.loads(l) for l in path.read_text().splitlines() if l] if path.exists() else []


def truncate_metrics(workdir, step):
  """Drops the records past `step` (work lost in an interruption); returns the rest."""
  path = pathlib.Path(workdir) / METRICS
  if not path.exists():
    return []
  keep = [l for l in path.read_text().splitlines() if l and json.loads(l)['step'] <= step]
  with atomic_path(path) as tmp:
    tmp.write_text(''.join(l + '\n' for l in keep))
  return [json.loads(l) for l in keep]


def append_metrics(workdir, record):
  with open(pathlib.Path(workdir) / METRICS, 'a') as f:
    f.write(json.dumps(record) + '\n')


def run_file(workdir, name):
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise InputError(f'{workdir}: run folder not found')
  if not (workdir / name).is_file():
    raise InputError(f'{workdir}: no {name}; is this a folder written by train.py?')
  return workdir / name


def read_config(workdir):
  """The config dict a run was trained with (its config.json)."""
  return read_json(run_file(workdir, 'config.json'))


def read_summary(workdir):
  """What the stats pass found in a run's training file (rows, not_unit_norm, ...)."""
  return read_json(run_file(workdir, 'stats.json'))['summary']


def checkpoint_step(workdir, which):
  """Step of a run's newest `which` ('best' or 'latest') checkpoint, or None.

  Orbax keeps each checkpoint in a folder named after its step.
  """
  folder = pathlib.Path(workdir) / 'ckpt' / which
  steps = [int(p.name) for p in folder.glob('*') if p.is_dir() and p.name.isdigit()]
  return max(steps) if steps else None


def latest_run(root='runs'):
  """The run under `root` whose newest checkpoint is most recent."""
  root = pathlib.Path(root)
  runs = [p.parent.parent for p in root.glob('*/ckpt/best')] if root.is_dir() else []
  if not runs:
    raise InputError(f'{root}: no trained runs found; train one with train.py or pass --workdir')
  return max(runs, key=lambda p: (p / METRICS).stat().st_mtime
             if (p / METRICS).exists() else 0.0)
