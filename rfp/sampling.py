"""Turning noise into fingerprints with a trained velocity network.

`make_generator` builds the sampler: one jit-compiled function that integrates
a batch of noise to data (a `lax.scan` over solver steps), with the batch split
across the mesh's devices by a `NamedSharding`. `make_noise` draws that noise
so that every row's value is fixed by (seed, shard, row) alone, whatever the
batch size or the number of devices and hosts. `write_samples` runs both into
a folder of shards (`rfp.sample_folder`): shard `i` holds rows that depend
only on (seed, i, checkpoint, solver, steps, matmul dtype), its noise coming
from `fold_in(fold_in(key(seed), i), block)` for fixed blocks of `BLOCK_ROWS`
rows. Running it again skips complete shards and redoes partial ones; with
several processes (`jax.distributed`), shard `i` belongs to process
`i % process_count`.
"""

import collections
import datetime
import functools
import os
import pathlib
import shlex
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import rfp
from rfp import calibration, checkpoint, data, files, flow, model as model_lib, sample_folder, sharding
from rfp.errors import InputError

# Noise is drawn in blocks of this many rows, each from its own key, so a row's
# noise never depends on how rows are batched. Changing it changes every sample.
BLOCK_ROWS = 1024
RNG_IMPL = 'threefry2x32'  # Pinned: the default implementation is a global JAX option.
MATMUL_DTYPES = ('float32', 'bfloat16')
# Sampler calls in flight while the host copies one out: enough to keep the
# device busy, few enough that their outputs fit in its memory.
LOOKAHEAD = 2


def make_generator(model, steps, solver, mesh, *, stats=None, sphere=False,
                   out_dtype=jnp.float32, temperature=1.0):
  """A jitted `(params, z_bd) -> x_bd` that integrates noise to data.

  Rows of `z_bd` are split across the mesh; each row depends only on its own
  noise. Without `stats` the result is in the normalised space the model was
  trained in. With `stats` it is de-normalised to the embedding space, then
  (if `sphere`) projected onto the unit sphere, and cast to `out_dtype` on the
  device, so only the final bytes travel to the host.

  float32 matmuls run at full float32 precision on every backend (GPUs would
  otherwise use TF32), so float32 samples are reproducible across machines;
  for speed, sample with a bfloat16 model (`model.dtype`).
  """
  if solver not in flow.SOLVERS:
    raise ValueError(f'unknown solver {solver!r}; expected one of {flow.SOLVERS}')
  precision = 'highest' if jnp.dtype(model.dtype) == jnp.float32 else 'default'

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def generate(params, z_bd):
    with jax.default_matmul_precision(precision):
      v_fn = lambda x, t: model.apply(params, x, t).astype(jnp.float32)
      # The noise's scale (`rfp.calibration`); at 1 the product is exact.
      x_bd = flow.solve(v_fn, temperature * z_bd, steps, solver)
    if stats is None:
      return x_bd
    x_bd = x_bd * jnp.asarray(stats.std) + jnp.asarray(stats.mean)
    if sphere:
      x_bd = x_bd / jnp.linalg.norm(x_bd, axis=-1, keepdims=True)
    return x_bd.astype(out_dtype)

  return generate


def shard_key(seed, shard):
  """The key of one shard: `fold_in(key(seed), shard)`, from the global shard id."""
  return jax.random.fold_in(jax.random.key(seed, impl=RNG_IMPL), shard)


def block_noise(seed, shard, block, dim):
  """Noise of rows `[block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS)` of a shard.

  The definition every sampler follows: `normal(fold_in(shard_key, block))`.
  """
  return jax.random.normal(jax.random.fold_in(shard_key(seed, shard), block),
                           (BLOCK_ROWS, dim), jnp.float32)


def batch_normal(batch_size, shape, salt=None):
  """`(key, start) -> [batch_size, *shape]`: normal rows [start, start + batch_size)
  where block b of `BLOCK_ROWS` rows is `normal(fold_in(key, b))` (with `salt`:
  `normal(fold_in(fold_in(key, b), salt))`, another stream beside it).

  `start` must be a multiple of `batch_size`. Only whole blocks are drawn, so a
  batch that is not a multiple or divisor of `BLOCK_ROWS` draws up to one block
  it does not keep.
  """
  aligned = batch_size % BLOCK_ROWS == 0 or BLOCK_ROWS % batch_size == 0
  # Blocks overlapped by a batch starting anywhere on a multiple of batch_size.
  num_blocks = -(-batch_size // BLOCK_ROWS) + (0 if aligned else 1)
  shape = tuple(shape)

  def draw(key, start):
    first = start // BLOCK_ROWS
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(num_blocks))
    if salt is not None:
      keys = jax.vmap(jax.random.fold_in, (0, None))(keys, salt)
    z = jax.vmap(lambda k: jax.random.normal(k, (BLOCK_ROWS,) + shape, jnp.float32))(keys)
    z = z.reshape((num_blocks * BLOCK_ROWS,) + shape)
    return jax.lax.dynamic_slice_in_dim(z, start - first * BLOCK_ROWS, batch_size)

  return draw


@functools.cache  # One compiled function per shape: train.py validates every epoch.
def make_noise(dim, batch_size, mesh):
  """A jitted `(seed, shard, start) -> z_bd`: noise of rows [start, start + batch).

  `start` must be a multiple of `batch_size`. Equal to the matching rows of
  `block_noise`, placed on the mesh like a sampler batch (`batch_normal`).
  """
  draw = batch_normal(batch_size, (dim,))

  @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
  def noise(seed, shard, start):
    return draw(shard_key(seed, shard), start)

  return noise


def generate_rows(generate, params, seed, shard, n, dim, batch_size, mesh):
  """Rows [0, n) of shard `shard` (normalised space), as a numpy array.

  The same noise as `make_noise`, so these are the rows `sample.py` writes to
  that shard with that seed and model.
  """
  params = sharding.put_replicated(params, mesh)
  batch_size = sharding.round_up(batch_size, mesh)
  noise = make_noise(dim, batch_size, mesh)
  out = [jax.device_get(generate(params, noise(seed, shard, start)))
         for start in range(0, n, batch_size)]
  return np.concatenate(out)[:n]


def resolve_sphere(sphere, summary):
  """`sample.sphere`, where None (the default) means: project onto the unit
  sphere when every training row was unit-norm (`summary`, from stats.json).
  The best distractor of a query is a maximum over many rows, so a sampler
  whose rows are a little too long makes them far too hard."""
  return data.is_unit_norm(summary) if sphere is None else bool(sphere)


def check_config(sample_cfg):
  """InputError for any unusable field of a `sample` config section."""

  def positive_int(name):
    value = sample_cfg[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
      raise InputError(f'sample.{name}={value!r}: expected a positive integer')

  for name in ('n', 'shards', 'steps', 'batch_size'):
    positive_int(name)
  if sample_cfg.track_length is not None:
    positive_int('track_length')
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
                        ('matmul_dtype', (None,) + MATMUL_DTYPES)):
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
  each gets `shard-NNNNN.bounds.npy` (`rfp.sample_folder.track_bounds`),
  written before the shard takes its final name.

  Resumable: complete shards are kept as they are, partial ones are redone.
  With several JAX processes each writes only its shards (`i % process_count`).
  Raises InputError for bad settings, a missing run, a folder that cannot be
  written or holds samples made with other settings, or too little disk space.
  """
  check_config(sample_cfg)
  workdir, folder = pathlib.Path(workdir), pathlib.Path(folder)
  files.check_output(folder)  # Before the checkpoint loads; the shards' size once known.
  run_config, params, stats, meta = checkpoint.load_run(workdir, sample_cfg.checkpoint)
  model_cfg = run_config.model.copy_and_resolve_references()
  model_cfg.dtype = sample_cfg.matmul_dtype or model_cfg.dtype
  n, shards, seed = int(sample_cfg.n), int(sample_cfg.shards), int(sample_cfg.seed)
  steps, solver, dtype = int(sample_cfg.steps), sample_cfg.solver, sample_cfg.dtype
  dim = model_cfg.dim
  rows = sample_folder.rows_per_shard(n, shards)

  manifest = {
      'format': sample_folder.FORMAT, 'n': n, 'shards': shards, 'rows_per_shard': rows,
      'dim': dim, 'dtype': dtype, 'seed': seed, 'solver': solver, 'steps': steps,
      'network_evaluations': steps * flow.evaluations_per_step(solver),
      'matmul_dtype': model_cfg.dtype,
      'temperature': calibration.temperature(sample_cfg, workdir, meta['step']),
      # A distilled run (rfp/distill.py): its teacher, whose temperature is in the student.
      'distilled_from': (files.read_json(workdir / 'distill.json')
                         if (workdir / 'distill.json').exists() else None),
      'sphere': resolve_sphere(sample_cfg.sphere, files.read_summary(workdir)),
      'batch_size': int(sample_cfg.batch_size),
      'noise': {'rng': RNG_IMPL, 'block_rows': BLOCK_ROWS,
                'rule': 'normal(fold_in(fold_in(key(seed), shard), row // block_rows))'},
      'files': 'shard-{shard:05d}.npy',
      'checkpoint': {'workdir': str(workdir.absolute()), 'which': sample_cfg.checkpoint,
                     'step': meta['step'],
                     'path': str((workdir / 'ckpt' / sample_cfg.checkpoint /
                                  str(meta['step'])).absolute()),
                     'val_fd': meta.get('val_fd')},  # Saved with `best` checkpoints only.
      'model': model_cfg.to_dict(),
      'command': shlex.join(sys.argv),
      'rfp': _version(),
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }
  if sample_cfg.tracks:
    from rfp import tracks  # pylint: disable=g-import-not-at-top  (it builds on this module)
    fit = tracks.ensure_fit(workdir, sample_cfg, progress=progress, devices=devices)
    manifest['tracks'] = tracks.plan(fit, sample_cfg.track_length)
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
    _sample_shards(folder, todo, rows, manifest, model_lib.from_config(model_cfg), params, stats,
                   done_rows=sum(rows[i] for i in mine) - sum(rows[i] for i in todo),
                   total_rows=sum(rows[i] for i in mine), progress=progress,
                   devices=devices or jax.local_devices())
  return sample_folder.read_manifest(folder)


def _sample_shards(folder, todo, rows, manifest, model, params, stats, done_rows, total_rows,
                   progress, devices):
  """Writes the shards in `todo`, keeping the devices busy while the host writes."""
  mesh = sharding.data_mesh(devices)
  batch = sharding.round_up(manifest['batch_size'], mesh)
  dim, dtype = manifest['dim'], np.dtype(manifest['dtype'])
  generate = make_generator(model, manifest['steps'], manifest['solver'], mesh,
                            stats=stats, sphere=manifest['sphere'], out_dtype=dtype,
                            temperature=manifest['temperature'])
  params = sharding.put_replicated(params, mesh)
  seed = np.uint32(manifest['seed'])

  def shard_noise(i):
    if 'tracks' not in manifest:
      noise = make_noise(dim, batch, mesh)
      return ((start, noise(seed, np.int32(i), np.int32(start)))
              for start in range(0, rows[i], batch))
    from rfp import tracks  # pylint: disable=g-import-not-at-top  (it builds on this module)
    bounds, profile_t = tracks.shard_layout(manifest['tracks'], seed, i, rows[i])
    _write_atomic(sample_folder.bounds_path(folder, i), bounds)
    return tracks.shard_noise(manifest['tracks'], seed, i, bounds, profile_t, batch, dim, mesh)

  def dispatched():
    for i in todo:
      for start, z_bd in shard_noise(i):
        # Asynchronous: returns once the work is queued on the devices.
        yield i, start, generate(params, z_bd)

  bar = tqdm(total=total_rows, initial=done_rows, unit='row', unit_scale=True, desc='sample',
             dynamic_ncols=True, mininterval=1.0, disable=not progress)
  for i, start, x_bd in lookahead(dispatched(), depth=LOOKAHEAD):
    if start == 0:
      tmp = sample_folder.tmp_path(sample_folder.shard_path(folder, i))
      shard_file = np.lib.format.open_memmap(tmp, mode='w+', dtype=dtype, shape=(rows[i], dim))
    count = min(batch, rows[i] - start)
    shard_file[start:start + count] = np.asarray(x_bd)[:count]
    bar.update(count)
    if start + count == rows[i]:
      shard_file.flush()
      del shard_file
      with open(tmp, 'rb+') as f:  # On disk before it gets its final name.
        os.fsync(f.fileno())
      os.replace(tmp, sample_folder.shard_path(folder, i))
  bar.close()


def _write_atomic(path, array):
  """`np.save` under a temporary name, on disk before it takes `path`."""
  tmp = sample_folder.tmp_path(path)
  with open(tmp, 'wb') as f:
    np.save(f, array)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
