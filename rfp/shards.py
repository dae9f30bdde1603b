"""Synthetic fingerprints on disk: a folder of `.npy` shards and a manifest.

    OUT/manifest.json      what was sampled, from which checkpoint, how
    OUT/shard-00000.npy    [rows, dim] float16/float32, embedding space
    OUT/shard-00001.npy    ...

Shard `i` holds rows that depend only on (seed, i, checkpoint, solver, steps,
matmul dtype): its noise comes from `fold_in(fold_in(key(seed), i), block)`
for fixed blocks of `sampling.BLOCK_ROWS` rows, never from the batch size or
the devices that ran it. Shards are written to `NAME.tmp` and renamed when
complete, so a folder never holds a partial `.npy`; running the same command
again skips complete shards and redoes partial ones. With several processes
(`jax.distributed`), shard `i` belongs to process `i % process_count`.
"""

import collections
import datetime
import io
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import jax
import numpy as np
from tqdm import tqdm

import rfp
from rfp import checkpoint, data, flow, model as model_lib, sampling, sharding
from rfp.errors import InputError

DTYPES = ('float16', 'float32')
MATMUL_DTYPES = ('float32', 'bfloat16')
CHECKPOINTS = ('best', 'latest')
MANIFEST = 'manifest.json'
FORMAT = 'rfp-samples/1'
# Sampler calls in flight while the host copies one out: enough to keep the
# device busy, few enough that their outputs fit in its memory.
LOOKAHEAD = 2

# Manifest fields that decide the rows' values: a folder holding any other
# value for one of them cannot be resumed or extended by this run.
_IDENTITY = ('format', 'n', 'shards', 'rows_per_shard', 'dim', 'dtype', 'seed', 'solver',
             'steps', 'matmul_dtype', 'sphere', 'noise', 'checkpoint.step', 'model')


def rows_per_shard(n, shards):
  """Rows of each shard: as equal as possible, the first `n % shards` one larger."""
  base, extra = divmod(n, shards)
  return [base + (i < extra) for i in range(shards)]


def shard_path(out, shard):
  return pathlib.Path(out) / f'shard-{shard:05d}.npy'


def _tmp_path(path):
  return path.with_name(path.name + '.tmp')


def _npy_bytes(rows, dim, dtype):
  """Size of a `.npy` file holding a C-ordered [rows, dim] array."""
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(header, {
      'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False,
      'shape': (rows, dim)})
  return len(header.getvalue()) + rows * dim * np.dtype(dtype).itemsize


def _check_shard(path, rows, dim, dtype):
  """None if `path` is a complete shard of this shape, else why not."""
  if not path.is_file():
    return 'partial' if _tmp_path(path).exists() else 'missing'
  try:
    emb = data.open_embeddings(path)
  except InputError as e:
    return f'unreadable ({e})'
  if emb.shape != (rows, dim) or emb.dtype != np.dtype(dtype):
    return f'holds {emb.shape} {emb.dtype}, expected {(rows, dim)} {dtype}'
  return None


def check_args(n, shards, seed, steps, solver, dtype, batch_size, which, matmul_dtype):
  def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
      raise InputError(f'{name}={value!r}: expected a positive integer')

  positive_int(n, 'n')
  positive_int(shards, 'shards')
  if n < shards:
    raise InputError(f'n={n} is smaller than shards={shards}: every shard needs at least one row')
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    raise InputError(f'seed={seed!r}: expected an integer in [0, 2**32)')
  if steps is not None:
    positive_int(steps, 'steps')
  if batch_size is not None:
    positive_int(batch_size, 'batch_size')
  if solver is not None and solver not in flow.SOLVERS:
    raise InputError(f'solver={solver!r}: expected one of {", ".join(flow.SOLVERS)}')
  if dtype not in DTYPES:
    raise InputError(f'dtype={dtype!r}: expected one of {", ".join(DTYPES)}')
  if which not in CHECKPOINTS:
    raise InputError(f'checkpoint={which!r}: expected one of {", ".join(CHECKPOINTS)}')
  if matmul_dtype is not None and matmul_dtype not in MATMUL_DTYPES:
    raise InputError(f'matmul_dtype={matmul_dtype!r}: expected one of {", ".join(MATMUL_DTYPES)}')


def _version():
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, timeout=5, check=True,
                            cwd=pathlib.Path(__file__).parent).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    commit = None
  return {'version': rfp.__version__, 'git': commit}


def _field(manifest, key):
  node = manifest
  for part in key.split('.'):
    node = node.get(part) if isinstance(node, dict) else None
  return node


def _check_manifest(out, manifest):
  """Refuses to add to a folder sampled with other settings."""
  path = pathlib.Path(out) / MANIFEST
  if not path.exists():
    return
  try:
    old = checkpoint.read_json(path)
  except ValueError as e:
    raise InputError(f'{path}: unreadable manifest ({e}); use another --out or delete it') from e
  changed = [k for k in _IDENTITY if _field(old, k) != _field(manifest, k)]
  if changed:
    shown = ', '.join(f'{k} {_brief(_field(old, k))} -> {_brief(_field(manifest, k))}'
                      for k in changed[:4])
    raise InputError(f'{out}: holds samples made with other settings ({shown}); '
                     'use another --out or delete that folder')


def _brief(value):
  text = str(value)
  return text if len(text) <= 40 else text[:37] + '...'


def _write_manifest(out, manifest):
  """Atomic, with a per-process temporary name: several hosts may share `out`."""
  path = pathlib.Path(out) / MANIFEST
  if path.exists():
    return
  tmp = path.with_name(f'{MANIFEST}.{os.getpid()}.{jax.process_index()}.tmp')
  checkpoint.write_json(tmp, manifest)
  os.replace(tmp, path)


def _check_disk(out, todo, rows, dim, dtype):
  """Refuses to start when the shards still to write do not fit on the disk."""
  needed = sum(_npy_bytes(rows[i], dim, dtype) for i in todo)
  # Partial shards are overwritten, so their space counts as free.
  reclaimable = sum(_tmp_path(shard_path(out, i)).stat().st_size for i in todo
                    if _tmp_path(shard_path(out, i)).exists())
  free = shutil.disk_usage(out).free + reclaimable
  if needed > free:
    raise InputError(f'{out}: {len(todo)} shards need {_size(needed)} but only '
                     f'{_size(free)} is free; free space, or use fewer rows or float16')


def _size(nbytes):
  for unit in ('B', 'kB', 'MB', 'GB'):
    if nbytes < 1000:
      break
    nbytes /= 1000
  else:
    unit = 'TB'
  return f'{nbytes:.1f} {unit}'


def lookahead(items, depth):
  """Yields `items` in order, pulling `depth` ahead so device work overlaps host work."""
  queue = collections.deque()
  for item in items:
    queue.append(item)
    if len(queue) > depth:
      yield queue.popleft()
  yield from queue


def write_samples(workdir, out, n, shards, *, seed=0, steps=None, solver=None,
                  dtype='float16', batch_size=None, sphere=False, which='best',
                  matmul_dtype=None, progress=True, devices=None):
  """Samples `n` fingerprints from a trained run into `shards` `.npy` files.

  Args:
    workdir: the training run (written by train.py).
    out: the folder for `shard-NNNNN.npy` and `manifest.json`; created if needed.
    n: total rows over all shards.
    shards: number of files; rows are split as evenly as possible.
    seed: noise seed; with the shard index it fixes every row.
    steps, solver, batch_size: default to the run's `config.sample`.
    dtype: 'float16' or 'float32' on disk.
    sphere: project rows onto the unit sphere after de-normalising.
    which: 'best' (lowest validation FD) or 'latest' checkpoint.
    matmul_dtype: 'float32' or 'bfloat16' to override the model's compute dtype.
    progress: show a progress bar.
    devices: this process's devices to run on (default: all of them).

  Returns:
    The manifest (as written to `out/manifest.json`).

  Resumable: complete shards are kept as they are, partial ones are redone.
  With several JAX processes each writes only its shards (`i % process_count`).
  Raises InputError for bad arguments, a missing run, a folder holding samples
  made with other settings, or too little disk space.
  """
  check_args(n, shards, seed, steps, solver, dtype, batch_size, which, matmul_dtype)
  workdir, out = pathlib.Path(workdir), pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise InputError(f'{out}: exists and is not a folder')
  config, params, stats, meta = checkpoint.load_run(workdir, which)
  step = meta['step']
  steps = steps or config.sample.steps
  solver = solver or config.sample.solver
  batch_size = batch_size or config.sample.batch_size
  check_args(n, shards, seed, steps, solver, dtype, batch_size, which, matmul_dtype)
  n, shards, seed, steps, batch_size = map(int, (n, shards, seed, steps, batch_size))  # For JSON.
  model_cfg = config.model.copy_and_resolve_references()
  model_cfg.dtype = matmul_dtype or model_cfg.dtype
  dim = model_cfg.dim
  rows = rows_per_shard(n, shards)

  manifest = {
      'format': FORMAT, 'n': n, 'shards': shards, 'rows_per_shard': rows, 'dim': dim,
      'dtype': dtype, 'seed': seed, 'solver': solver, 'steps': steps,
      'network_evaluations': steps * flow.evaluations_per_step(solver),
      'matmul_dtype': model_cfg.dtype, 'sphere': bool(sphere), 'batch_size': batch_size,
      'noise': {'rng': sampling.RNG_IMPL, 'block_rows': sampling.BLOCK_ROWS,
                'rule': 'normal(fold_in(fold_in(key(seed), shard), row // block_rows))'},
      'files': 'shard-{shard:05d}.npy',
      'checkpoint': {'workdir': str(workdir.absolute()), 'which': which, 'step': step,
                     'path': str((workdir / 'ckpt' / which / str(step)).absolute()),
                     'val_fd': meta.get('val_fd')},  # Saved with `best` checkpoints only.
      'model': model_cfg.to_dict(),
      'command': shlex.join(sys.argv),
      'rfp': _version(),
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }
  _check_manifest(out, manifest)
  out.mkdir(parents=True, exist_ok=True)

  mine = [i for i in range(shards) if i % jax.process_count() == jax.process_index()]
  todo = [i for i in mine if _check_shard(shard_path(out, i), rows[i], dim, dtype) is not None]
  _check_disk(out, todo, rows, dim, dtype)
  _write_manifest(out, manifest)
  if todo:
    _sample_shards(out, todo, rows, manifest, model_lib.from_config(model_cfg), params, stats,
                   done_rows=sum(rows[i] for i in mine) - sum(rows[i] for i in todo),
                   total_rows=sum(rows[i] for i in mine), progress=progress,
                   devices=devices or jax.local_devices())
  return checkpoint.read_json(out / MANIFEST)


def _sample_shards(out, todo, rows, manifest, model, params, stats, done_rows, total_rows,
                   progress, devices):
  """Writes the shards in `todo`, keeping the devices busy while the host writes."""
  mesh = sharding.data_mesh(devices)
  batch = sharding.round_up(manifest['batch_size'], mesh)
  dim, dtype = manifest['dim'], np.dtype(manifest['dtype'])
  generate = sampling.make_generator(model, manifest['steps'], manifest['solver'], mesh,
                                     stats=stats, sphere=manifest['sphere'], out_dtype=dtype)
  noise = sampling.make_noise(dim, batch, mesh)
  params = sharding.put_replicated(params, mesh)
  seed = np.uint32(manifest['seed'])

  def dispatched():
    for i in todo:
      for start in range(0, rows[i], batch):
        # Asynchronous: returns once the work is queued on the devices.
        yield i, start, generate(params, noise(seed, np.int32(i), np.int32(start)))

  bar = tqdm(total=total_rows, initial=done_rows, unit='row', unit_scale=True, desc='sample',
             dynamic_ncols=True, mininterval=1.0, disable=not progress)
  for i, start, x_bd in lookahead(dispatched(), depth=LOOKAHEAD):
    if start == 0:
      tmp = _tmp_path(shard_path(out, i))
      shard_file = np.lib.format.open_memmap(tmp, mode='w+', dtype=dtype, shape=(rows[i], dim))
    count = min(batch, rows[i] - start)
    shard_file[start:start + count] = np.asarray(x_bd)[:count]
    bar.update(count)
    if start + count == rows[i]:
      shard_file.flush()
      del shard_file
      with open(tmp, 'rb+') as f:  # On disk before it gets its final name.
        os.fsync(f.fileno())
      os.replace(tmp, shard_path(out, i))
  bar.close()


def read_manifest(out):
  """The manifest of a sample folder; InputError (one line) if it is missing or unreadable."""
  path = pathlib.Path(out) / MANIFEST
  if not path.is_file():
    raise InputError(f'{out}: no {MANIFEST}; not a folder written by sample.py')
  try:
    manifest = checkpoint.read_json(path)
  except ValueError as e:
    raise InputError(f'{path}: unreadable manifest ({e!r})') from e
  missing = [k for k in ('rows_per_shard', 'dim', 'dtype')
             if not isinstance(manifest, dict) or k not in manifest]
  if missing:
    raise InputError(f'{path}: unreadable manifest (no {", ".join(missing)})')
  return manifest


def open_samples(out, manifest=None):
  """The shards of a sample folder as read-only memmaps, checked against its manifest.

  `manifest` (as `read_manifest` returns it) saves reading it again. Raises
  InputError (one line) if the folder has no manifest or a shard is missing,
  partial or of the wrong shape.
  """
  out = pathlib.Path(out)
  manifest = read_manifest(out) if manifest is None else manifest
  rows, dim, dtype = manifest['rows_per_shard'], manifest['dim'], manifest['dtype']
  for i, r in enumerate(rows):
    problem = _check_shard(shard_path(out, i), r, dim, dtype)
    if problem:
      raise InputError(f'{shard_path(out, i)}: shard {i} of {len(rows)} is {problem}; '
                       're-run the sample.py command in the manifest to finish it')
  return [np.load(shard_path(out, i), mmap_mode='r') for i in range(len(rows))]
