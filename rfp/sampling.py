"""Writing a trained run's samples into a folder of shards (`rfp.sample_folder`).

`write_samples` runs the run's sampler (`rfp.generator`) over the noise of
`rfp.noise` (or, for tracks, of `rfp.tracks`): shard `i` holds rows that
depend only on (seed, i, checkpoint, solver, steps, matmul dtype,
temperature). Running it again skips complete shards and redoes partial
ones; with several processes (`jax.distributed`), shard `i` belongs to
process `i % process_count`.
"""

import collections
import datetime
import itertools
import pathlib
import shlex
import subprocess
import sys

import jax
import numpy as np
from tqdm import tqdm

import rfp
from rfp import (files, flow, generator, noise as noise_lib, rows as rows_lib, sample_folder,
                 sharding, tracks)
from rfp.errors import InputError, check_positive_int

# Sampler calls in flight while the host copies one out: enough to keep the
# device busy, few enough that their outputs fit in its memory.
LOOKAHEAD = 2


def check_config(sample_cfg):
  """InputError for any unusable field of a `sample` config section."""
  for name in ('n', 'shards', 'steps', 'batch_size'):
    check_positive_int(sample_cfg[name], f'sample.{name}')
  if sample_cfg.track_length is not None:
    check_positive_int(sample_cfg.track_length, 'sample.track_length')
  if sample_cfg.n < sample_cfg.shards:
    raise InputError(f'n={sample_cfg.n} is smaller than shards={sample_cfg.shards}: every shard '
                     'needs at least one row')
  seed = sample_cfg.seed
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    raise InputError(f'sample.seed={seed!r}: expected an integer in [0, 2**32)')
  temperature = sample_cfg.temperature
  if temperature is not None and not (isinstance(temperature, (int, float)) and temperature > 0):
    raise InputError(f'sample.temperature={temperature!r}: expected a positive number')
  for name, allowed in (('solver', flow.SOLVERS), ('dtype', sample_folder.DTYPES),
                        ('checkpoint', sample_folder.CHECKPOINTS), ('sphere', (None, True, False)),
                        ('tracks', (True, False)),
                        ('matmul_dtype', (None,) + generator.MATMUL_DTYPES)):
    if sample_cfg[name] not in allowed:
      raise InputError(f'sample.{name}={sample_cfg[name]!r}: expected one of '
                       f'{", ".join(str(a) for a in allowed)}')


def _version():
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, timeout=5, check=True,
                            cwd=pathlib.Path(__file__).parent).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    commit = None
  return {'version': rfp.__version__, 'git': commit}


def lookahead(items, depth):
  """Yields `items` in order, pulling `depth` ahead so device work overlaps host work."""
  queue = collections.deque()
  for item in items:
    queue.append(item)
    if len(queue) > depth:
      yield queue.popleft()
  yield from queue


def write_samples(workdir, folder, sample_cfg, progress=True, devices=None):
  """Samples `sample_cfg.n` fingerprints from a trained run into a folder of shards.

  Args:
    workdir: the training run (written by train.py).
    folder: where `shard-NNNNN.npy` and `manifest.json` go; created if needed.
    sample_cfg: a `sample` config section: n, shards, seed, steps, solver,
      batch_size, dtype (on disk), sphere (project rows onto the unit sphere
      after de-normalising), checkpoint ('best' or 'latest'), matmul_dtype
      (None: the model's compute dtype), tracks (whole tracks from
      `rfp.tracks`, not i.i.d. rows) and track_length (None: lengths of the
      training tracks).
    progress: show a progress bar.
    devices: this process's devices to run on (default: all of them).

  Returns:
    The manifest (as written to `folder/manifest.json`).

  Track shards hold whole tracks (the last one cut at the shard's end), and
  each gets `shard-NNNNN.bounds.npy` (`rfp.sample_folder.read_bounds`),
  written before the shard takes its final name.

  Every row is checked for NaN/Inf as it is written: a sampler that diverges
  stops with an InputError naming the shard and row, its shard left partial.

  Resumable: complete shards are kept as they are, partial ones are redone.
  With several JAX processes each writes only its shards (`i % process_count`).
  Raises InputError for bad settings, a missing run, a folder that cannot be
  written or holds samples made with other settings, or too little disk space.
  """
  check_config(sample_cfg)
  workdir, folder = pathlib.Path(workdir), pathlib.Path(folder)
  files.check_output(folder)  # Before the checkpoint loads; the shards' size once known.
  sampler = generator.load_sampler(workdir, sample_cfg)
  n, shards, seed = int(sample_cfg.n), int(sample_cfg.shards), int(sample_cfg.seed)
  steps, solver, dtype = sampler.steps, sampler.solver, sample_cfg.dtype
  dim, meta = sampler.model_cfg.dim, sampler.meta
  rows = sample_folder.rows_per_shard(n, shards)

  manifest = {
      'format': sample_folder.FORMAT, 'n': n, 'shards': shards, 'rows_per_shard': rows,
      'dim': dim, 'dtype': dtype, 'seed': seed, 'solver': solver, 'steps': steps,
      'network_evaluations': steps * flow.evaluations_per_step(solver),
      'matmul_dtype': sampler.model_cfg.dtype,
      'temperature': sampler.temperature,
      # A distilled run (rfp/distill.py): its teacher, whose temperature is in the student.
      'distilled_from': (files.read_json(workdir / 'distill.json')
                         if (workdir / 'distill.json').exists() else None),
      'sphere': sampler.sphere,
      'checked_finite': True,  # Every row, as written (`_sample_shards`): no second read.
      'batch_size': int(sample_cfg.batch_size),
      'noise': {'rng': noise_lib.RNG_IMPL, 'block_rows': noise_lib.BLOCK_ROWS,
                'rule': 'normal(fold_in(fold_in(key(seed), shard), row // block_rows))'},
      'files': 'shard-{shard:05d}.npy',
      'checkpoint': {'workdir': str(workdir.absolute()), 'which': sample_cfg.checkpoint,
                     'step': meta['step'],
                     'path': str((workdir / 'ckpt' / sample_cfg.checkpoint /
                                  str(meta['step'])).absolute()),
                     'val_fd': meta.get('val_fd')},  # Saved with `best` checkpoints only.
      'model': sampler.model_cfg.to_dict(),
      'command': shlex.join(sys.argv),
      'rfp': _version(),
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }
  if sample_cfg.tracks:
    fit = tracks.ensure_fit(sampler, progress=progress, devices=devices)
    manifest['tracks'] = tracks.manifest_entry(fit, sample_cfg.track_length)
  sample_folder.check_manifest(folder, manifest)
  folder.mkdir(parents=True, exist_ok=True)

  mine = [i for i in range(shards) if i % jax.process_count() == jax.process_index()]
  todo = [i for i in mine
          if sample_folder.check_shard(sample_folder.shard_path(folder, i), rows[i], dim,
                                       dtype) is not None
          or ('tracks' in manifest and sample_folder.check_bounds(folder, i, rows[i]) is not None)]
  needed, free = sample_folder.check_disk(folder, todo, rows, dim, dtype)
  if progress and todo:
    print(f'{folder}: {len(todo)} of {shards} shards to write, {files.size_text(needed)} '
          f'of disk ({files.size_text(free)} free)', file=sys.stderr, flush=True)
  sample_folder.write_manifest(folder, manifest)
  if todo:
    _sample_shards(folder, todo, rows, manifest, sampler,
                   done_rows=sum(rows[i] for i in mine) - sum(rows[i] for i in todo),
                   total_rows=sum(rows[i] for i in mine), progress=progress,
                   devices=devices or jax.local_devices())
  return sample_folder.read_manifest(folder)


def _sample_shards(folder, todo, rows, manifest, sampler, done_rows, total_rows, progress,
                   devices):
  """Writes the shards in `todo`, keeping the devices busy while the host writes."""
  mesh = sharding.data_mesh(devices)
  batch = sharding.round_up(manifest['batch_size'], mesh)
  dim, dtype = manifest['dim'], np.dtype(manifest['dtype'])
  generate = sampler.generator(mesh, out_dtype=dtype)
  params = sharding.put_replicated(sampler.params, mesh)
  seed = np.uint32(manifest['seed'])

  def shard_noise(i):
    if 'tracks' not in manifest:
      noise = noise_lib.make_noise(dim, batch, mesh)
      return ((start, noise(seed, np.int32(i), np.int32(start)))
              for start in range(0, rows[i], batch))
    bounds, profile_t = tracks.shard_layout(manifest['tracks'], seed, i, rows[i])
    path = sample_folder.bounds_path(folder, i)
    with files.atomic_path(path, tmp=sample_folder.tmp_path(path), sync=True) as tmp:
      with open(tmp, 'wb') as f:
        np.save(f, bounds)
    return tracks.shard_noise(manifest['tracks'], seed, i, bounds, profile_t, batch, dim, mesh)

  def dispatched():
    for i in todo:
      for start, z_bd in shard_noise(i):
        # Asynchronous: returns once the work is queued on the devices.
        yield i, start, generate(params, z_bd)

  bar = tqdm(total=total_rows, initial=done_rows, unit='row', unit_scale=True, desc='sample',
             dynamic_ncols=True, mininterval=1.0, disable=not progress)
  for i, batches in itertools.groupby(lookahead(dispatched(), depth=LOOKAHEAD), lambda b: b[0]):
    path = sample_folder.shard_path(folder, i)
    # Named `.tmp` until complete, so a resumed run sees a partial shard (`check_shard`).
    # Plain appends, not a memory map: a map's page faults cost the host a
    # tenth of the one-step sampler's rate.
    with (files.atomic_path(path, tmp=sample_folder.tmp_path(path), sync=True) as tmp,
          open(tmp, 'wb') as f):
      np.lib.format.write_array_header_1_0(f, {'descr': np.lib.format.dtype_to_descr(dtype),
                                               'fortran_order': False, 'shape': (rows[i], dim)})
      for _, start, x_bd in batches:
        count = min(batch, rows[i] - start)
        x_bd = np.asarray(x_bd)[:count]
        # Checked here, on the host copy, so that rows sampled now need no second read.
        rows_lib.check_finite(x_bd, path, range(start, start + count))
        f.write(np.ascontiguousarray(x_bd, dtype).data)
        bar.update(count)
  bar.close()
