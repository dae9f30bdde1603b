"""Synthetic fingerprints on disk: a folder of `.npy` shards and a manifest.

    FOLDER/manifest.json      what was sampled, from which checkpoint, how
    FOLDER/shard-00000.npy    [rows, dim] float16/float32, embedding space
    FOLDER/shard-00001.npy    ...
    FOLDER/shard-00000.bounds.npy   tracks only: int64 [tracks + 1], each track's
                              first row in the shard, then its row count

Shards are written to `NAME.tmp` and renamed when complete (`rfp.sampling`
writes them), so a folder never holds a partial `.npy`; a track shard's
bounds file takes its final name before the shard does. This module reads,
checks and finds folders; it imports no JAX, so an evaluation that finds its
rows already sampled never starts it.
"""

import io
import pathlib

import numpy as np

from rfp import data, files
from rfp.bounds import stack_bounds
from rfp.errors import InputError

DTYPES = ('float16', 'float32')
CHECKPOINTS = ('best', 'latest')
MANIFEST = 'manifest.json'
FORMAT = 'rfp-samples/1'
# Manifest fields that decide the rows' values: a folder holding any other
# value for one of them cannot be resumed or extended by this run.
IDENTITY = ('format', 'n', 'shards', 'rows_per_shard', 'dim', 'dtype', 'seed', 'solver',
            'steps', 'matmul_dtype', 'sphere', 'temperature', 'noise', 'checkpoint.step', 'model',
            'tracks')


def rows_per_shard(n, shards):
  """Rows of each shard: as equal as possible, the first `n % shards` one larger."""
  base, extra = divmod(n, shards)
  return [base + (i < extra) for i in range(shards)]


def shard_path(folder, shard):
  return pathlib.Path(folder) / f'shard-{shard:05d}.npy'


def bounds_path(folder, shard):
  return pathlib.Path(folder) / f'shard-{shard:05d}.bounds.npy'


def tmp_path(path):
  return path.with_name(path.name + '.tmp')


def _npy_bytes(rows, dim, dtype):
  """Size of a `.npy` file holding a C-ordered [rows, dim] array."""
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(header, {
      'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False,
      'shape': (rows, dim)})
  return len(header.getvalue()) + rows * dim * np.dtype(dtype).itemsize


def check_shard(path, rows, dim, dtype):
  """None if `path` is a complete shard of this shape, else why not."""
  if not path.is_file():
    return 'partial' if tmp_path(path).exists() else 'missing'
  try:
    emb = data.open_embeddings(path)
  except InputError as e:
    return f'unreadable ({e})'
  if emb.shape != (rows, dim) or emb.dtype != np.dtype(dtype):
    return f'holds {emb.shape} {emb.dtype}, expected {(rows, dim)} {dtype}'
  return None


def _read_shard_bounds(folder, shard):
  return np.load(bounds_path(folder, shard), allow_pickle=False)


def check_bounds(folder, shard, rows):
  """None if a track shard's bounds file is there and covers `rows` rows, else why not."""
  path = bounds_path(folder, shard)
  if not path.is_file():
    return 'missing its bounds file'
  try:
    bounds = _read_shard_bounds(folder, shard)
  except (OSError, ValueError) as e:
    return f'unreadable bounds ({e})'
  if (bounds.ndim != 1 or len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != rows
      or np.any(np.diff(bounds) <= 0)):
    return f'holds bounds that do not cover its {rows} rows in increasing tracks'
  return None


def read_bounds(folder, manifest=None):
  """The track bounds (`rfp.bounds`) of a folder's rows, all shards
  concatenated in shard order. InputError (one line) if the folder
  holds i.i.d. rows, or a shard's bounds are missing or wrong."""
  manifest = read_manifest(folder) if manifest is None else manifest
  if 'tracks' not in manifest:
    raise InputError(f'{folder}: holds i.i.d. rows, not tracks; sample with '
                     '--config.sample.tracks=True for track bounds')
  for i, rows in enumerate(manifest['rows_per_shard']):
    problem = check_bounds(folder, i, rows)
    if problem:
      raise InputError(f'{bounds_path(folder, i)}: shard {i} of {len(manifest["rows_per_shard"])} '
                       f'is {problem}; re-run the sample.py command in the manifest')
  return stack_bounds([_read_shard_bounds(folder, i).astype(np.int64)
                       for i in range(len(manifest['rows_per_shard']))])


def check_disk(folder, todo, rows, dim, dtype):
  """Refuses to start when the shards still to write do not fit on the disk;
  returns (bytes they need, bytes free)."""
  needed = sum(_npy_bytes(rows[i], dim, dtype) for i in todo)
  # Partial shards are overwritten, so their space counts as free.
  reclaimable = sum(tmp_path(shard_path(folder, i)).stat().st_size for i in todo
                    if tmp_path(shard_path(folder, i)).exists())
  free = files.check_output(folder, needed - reclaimable, what=f'{len(todo)} shards',
                            hint='free space, or use fewer rows or float16')
  return needed - reclaimable, free


def check_manifest(folder, manifest):
  """Refuses to add to a folder sampled with other settings."""
  path = pathlib.Path(folder) / MANIFEST
  if not path.exists():
    return
  try:
    old = files.read_json(path)
  except ValueError as e:
    raise InputError(f'{path}: unreadable manifest ({e}); use another --out or delete it') from e
  files.check_same_settings(folder, old, manifest, IDENTITY, 'samples', '--out')


def write_manifest(folder, manifest):
  """The first process to get here writes it; the others find it there."""
  path = pathlib.Path(folder) / MANIFEST
  if not path.exists():
    files.write_json(path, manifest)


def read_manifest(folder):
  """The manifest of a sample folder; InputError (one line) if it is missing or unreadable."""
  path = pathlib.Path(folder) / MANIFEST
  if not path.is_file():
    raise InputError(f'{folder}: no {MANIFEST}; not a folder written by sample.py')
  try:
    manifest = files.read_json(path)
  except ValueError as e:
    raise InputError(f'{path}: unreadable manifest ({e!r})') from e
  missing = [k for k in ('rows_per_shard', 'dim', 'dtype')
             if not isinstance(manifest, dict) or k not in manifest]
  if missing:
    raise InputError(f'{path}: unreadable manifest (no {", ".join(missing)})')
  return manifest


def open_samples(folder, manifest=None):
  """The shards of a sample folder as read-only memmaps, checked against its manifest.

  `manifest` (as `read_manifest` returns it) saves reading it again. Raises
  InputError (one line) if the folder has no manifest or a shard is missing,
  partial or of the wrong shape.
  """
  folder = pathlib.Path(folder)
  manifest = read_manifest(folder) if manifest is None else manifest
  rows, dim, dtype = manifest['rows_per_shard'], manifest['dim'], manifest['dtype']
  for i, r in enumerate(rows):
    problem = check_shard(shard_path(folder, i), r, dim, dtype)
    if problem:
      raise InputError(f'{shard_path(folder, i)}: shard {i} of {len(rows)} is {problem}; '
                       're-run the sample.py command in the manifest to finish it')
  return [np.load(shard_path(folder, i), mmap_mode='r') for i in range(len(rows))]


def shard_rows(shard):
  """A shard (a memmap from `open_samples`) as a row source that streams with
  plain file reads, not its memory map: a pass over 100M rows then leaves no
  mapped pages resident, only one chunk."""
  return data.Embeddings(pathlib.Path(shard.filename), shard.shape, shard.dtype, shard.offset)
