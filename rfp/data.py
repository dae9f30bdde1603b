"""Fingerprint embeddings on disk: opening, validating, normalising, batching.

Embeddings arrive as `[n, dim]` float16/float32 `.npy` files or in the raw
memmap layout of NAFP, GraFPrint and PeakNetFP (`NAME.mm`, float32 row-major,
plus `NAME_shape.npy`). Files are only ever opened read-only. Files larger than
`in_memory_max_gb` are streamed in shuffled blocks, so memory stays bounded by
the shuffle buffer whatever the file size.
"""

import dataclasses
import hashlib
import pathlib
import warnings

import numpy as np

from rfp import layouts
from rfp.errors import InputError
from rfp.rows import Rows, finite_chunks, take_rows

_DTYPES = (np.float16, np.float32, np.float64)
UNIT_NORM_TOL = 1e-2


@dataclasses.dataclass(frozen=True)
class Embeddings(Rows):
  """A read-only `[n, dim]` embedding file: where its rows are and how to read them."""
  path: pathlib.Path
  shape: tuple
  dtype: np.dtype
  offset: int  # Bytes before the first row.

  @property
  def n(self):
    return self.shape[0]

  @property
  def dim(self):
    return self.shape[1]

  @property
  def nbytes(self):
    return self.n * self.dim * self.dtype.itemsize

  def read(self, start, stop):
    """Rows [start, stop) as float32, read with plain file I/O (no mapping)."""
    stop = min(stop, self.n)
    count = max(0, stop - start) * self.dim
    with open(self.path, 'rb') as f:
      f.seek(self.offset + start * self.dim * self.dtype.itemsize)
      x = np.fromfile(f, dtype=self.dtype, count=count)
    return x.reshape(-1, self.dim).astype(np.float32, copy=False)

  def memmap(self):
    return np.memmap(self.path, dtype=self.dtype, mode='r', offset=self.offset,
                     shape=self.shape)

  def take(self, rows):
    return take_rows(self.memmap(), rows)

  def checksum(self, sample_rows=4096):
    """Hash of the shape and of evenly spaced rows: cheap on a 100M-row file, and
    any re-embedding (which moves every row) changes it."""
    rows = np.unique(np.linspace(0, self.n - 1, min(sample_rows, self.n)).astype(np.int64))
    h = hashlib.sha1(repr(self.shape).encode())
    h.update(self.take(rows).tobytes())
    return h.hexdigest()[:16]


def _npy_layout(path):
  with open(path, 'rb') as f:
    try:
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, fortran, dtype = read_header(f)
    except ValueError as e:
      raise InputError(f'{path}: not a valid .npy file ({e})') from e
    offset = f.tell()
  if fortran and len(shape) > 1:
    raise InputError(f'{path}: Fortran-ordered arrays are not supported; save it C-ordered')
  return shape, dtype, offset


def _mm_layout(path):
  """Raw float32 rows; the shape from NAME_shape.npy (NAFP) or NAME.csv (NMFP's
  database.csv) beside the file."""
  shape_path = path.with_name(path.stem + '_shape.npy')
  tracks_path = path.with_suffix('.csv')
  if shape_path.is_file():
    try:
      shape = tuple(int(s) for s in np.load(shape_path))
    except (ValueError, OSError) as e:
      raise InputError(f'{shape_path}: cannot read shape ({e})') from e
  elif tracks_path.is_file():
    _, bounds, dim = layouts.read_nmfp_database(tracks_path)
    shape, shape_path = (int(bounds[-1]), dim), tracks_path
  else:
    raise InputError(f'{path}: neither {shape_path.name} (NAFP) nor {tracks_path.name} (NMFP) '
                     'beside it to give its shape')
  dtype = np.dtype(np.float32)
  expected = int(np.prod(shape)) * dtype.itemsize
  actual = path.stat().st_size
  if actual != expected:
    raise InputError(f'{path}: size {actual} bytes does not match shape {shape} from '
                     f'{shape_path.name} ({expected} bytes as float32)')
  return shape, dtype, 0


def open_embeddings(path, dim=None):
  """Opens an embedding file read-only and checks its layout (not its values)."""
  path = pathlib.Path(path)
  if not path.exists():
    raise InputError(f'{path}: file not found')
  if path.is_dir():
    raise InputError(f'{path}: is a folder; expected a .npy or .mm embedding file')
  if path.stat().st_size == 0:
    raise InputError(f'{path}: file is empty')
  if path.suffix == '.npy':
    shape, dtype, offset = _npy_layout(path)
  elif path.suffix == '.mm':
    shape, dtype, offset = _mm_layout(path)
  else:
    raise InputError(f'{path}: unknown format {path.suffix!r}; expected .npy or .mm')
  if dtype.type not in _DTYPES:
    raise InputError(f'{path}: dtype {dtype} is not float16/float32/float64')
  if len(shape) != 2:
    raise InputError(f'{path}: expected a 2-D [rows, dim] array, got shape {shape}')
  if shape[0] == 0:
    raise InputError(f'{path}: holds no rows')
  if dim is not None and shape[1] != dim:
    raise InputError(f'{path}: embeddings have dimension {shape[1]}, expected {dim}')
  if path.suffix == '.npy' and path.stat().st_size < offset + int(np.prod(shape)) * dtype.itemsize:
    raise InputError(f'{path}: file is truncated (shorter than its header says)')
  return Embeddings(path, tuple(shape), np.dtype(dtype), offset)


def int_vector(path, length, length_of, why):
  """A 1-D integer .npy of `length` entries (one per row of `length_of`), as int64;
  `why` says what it is for when the file is missing."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(f'{path}: file not found; {why}')
  try:
    a = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise InputError(f'{path}: cannot read ({e})') from e
  if a.ndim == 2 and a.shape[1] == 1:
    a = a[:, 0]
  if a.ndim != 1 or a.dtype.kind not in 'iu':
    raise InputError(f'{path}: expected a 1-D integer array, got {a.dtype} {a.shape}')
  if len(a) != length:
    raise InputError(f'{path}: has {len(a)} entries but {length_of} has {length} rows')
  return a.astype(np.int64)


def track_ids(path, emb, why):
  """[rows] track id of each row of `emb` (rows of a track consecutive): an integer
  .npy, or NMFP's database.csv."""
  if pathlib.Path(path).suffix != '.csv':
    return int_vector(path, emb.n, emb.path, why)
  ids = layouts.nmfp_track_ids(path)
  if len(ids) != emb.n:
    raise InputError(f'{path}: its tracks cover {len(ids)} rows but {emb.path} has {emb.n}')
  return ids


# A track setting that names no file: the embedding file's own track file, if it has one.
AUTO = 'auto'


def own_tracks(emb_path):
  """The track file written for the embedding file `emb_path`, or None:
  `<stem>_tracks.npy` beside it (as build_data.py writes them), or the
  `database.csv` of an NMFP `database.mm`."""
  emb_path = pathlib.Path(emb_path)
  beside = [emb_path.with_name(emb_path.stem + '_tracks.npy')]
  if emb_path.suffix == '.mm':
    beside.append(emb_path.with_suffix('.csv'))
  return next((str(p) for p in beside if p.is_file()), None)


def _track_rows(path, key, without):
  """Rows a track file covers, from its header alone (seconds on any size)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(f'{path}: file not found; set {key} to the track file, or to None ({without})')
  if path.suffix == '.csv':
    return int(layouts.read_nmfp_database(path)[1][-1])
  if path.suffix != '.npy':
    raise InputError(f'{path}: unknown track file format {path.suffix!r}; {key} expects an '
                     "integer .npy or NMFP's database.csv")
  shape, dtype, _ = _npy_layout(path)
  if dtype.kind not in 'iu' or not (len(shape) == 1 or shape[1:] == (1,)):
    raise InputError(f'{path}: expected a 1-D integer array of track ids, got {dtype} {shape}')
  return shape[0]


def resolve_tracks(setting, emb_path, key, without):
  """The track file to read for the embedding file `emb_path`, or None.

  `setting` is the value of the config key `key`: 'auto' (`AUTO`) takes the
  file's own track file (`own_tracks`), None takes none (`without` says what
  stands in), a path takes that file. A file that does not cover the rows of
  `emb_path` is refused here, before any work, in one line naming `key`: a
  track file follows its embedding file, never another one.
  """
  path = own_tracks(emb_path) if setting == AUTO else setting
  if not path:
    return None
  n_tracks = _track_rows(path, key, without)
  n_rows = open_embeddings(emb_path).n
  if n_tracks != n_rows:
    raise InputError(f'{path}: {n_tracks:,} track ids but {emb_path} has {n_rows:,} rows; it '
                     f'belongs to another file: set {key} to the track file of '
                     f'{pathlib.Path(emb_path).name} (or {AUTO}, or None: {without})')
  return str(path)


@dataclasses.dataclass(frozen=True)
class Stats:
  """Normalisation statistics; `mean` and `std` broadcast against rows."""
  mean: np.ndarray  # [dim]
  std: np.ndarray  # [dim]

  def normalize(self, x):
    return ((x - self.mean) / self.std).astype(np.float32)

  def denormalize(self, x):
    return x * self.std + self.mean

  def to_json(self):
    return {'mean': self.mean.tolist(), 'std': self.std.tolist()}

  @classmethod
  def from_json(cls, d):
    return cls(np.asarray(d['mean'], np.float32), np.asarray(d['std'], np.float32))


def scan(emb, norm='per_dim', chunk_rows=1 << 14, progress=False):
  """One pass over the file: rejects non-finite rows, warns on non-unit norms.

  Returns the normalisation `Stats` (per dimension, or one scalar mean/std over
  all values as the reference code does) and a summary dict.
  """
  s1 = np.zeros(emb.dim)
  s2 = np.zeros(emb.dim)
  off_sphere = 0
  for _, x in finite_chunks(emb, emb.path, progress, desc='statistics', chunk_rows=chunk_rows):
    s1 += x.sum(0, dtype=np.float64)
    s2 += np.square(x).sum(0, dtype=np.float64)
    off_sphere += int((np.abs(np.linalg.norm(x, axis=1) - 1) > UNIT_NORM_TOL).sum())
  if off_sphere:
    warnings.warn(f'{emb.path}: {off_sphere} of {emb.n} rows are not unit-norm '
                  f'(|norm - 1| > {UNIT_NORM_TOL}); fingerprints are usually L2-normalised')
  mean = s1 / emb.n
  var = np.maximum(s2 / emb.n - mean**2, 0)
  if norm == 'scalar':
    scalar_mean = mean.mean()
    var = np.full_like(mean, (s2.sum() / (emb.n * emb.dim)) - scalar_mean**2)
    mean = np.full_like(mean, scalar_mean)
  elif norm != 'per_dim':
    raise InputError(f'data.norm={norm!r}: expected "per_dim" or "scalar"')
  std = np.sqrt(np.maximum(var, 1e-12))
  summary = {'rows': emb.n, 'dim': emb.dim, 'dtype': str(emb.dtype), 'checksum': emb.checksum(),
             'not_unit_norm': off_sphere, 'mean_all': float(mean.mean()),
             'std_all': float(np.sqrt((s2.sum() / (emb.n * emb.dim)) - (s1.sum() / (emb.n * emb.dim))**2))}
  return Stats(mean.astype(np.float32), std.astype(np.float32)), summary


def is_unit_norm(summary):
  """Whether a `scan` summary found every row unit-norm: samples should be too."""
  return summary.get('not_unit_norm') == 0


def split_rows(n, val_fraction, val_max, seed, block_rows):
  """Held-out validation rows (sorted), as whole blocks of `block_rows` consecutive rows.

  Every system stores a track's windows consecutively, so a block holds out
  (most of) a track: the validation rows then measure how a model does on
  music it never heard, as distractors will be, not on neighbours of its
  training rows.
  """
  n_val = int(min(val_max, max(1, round(n * val_fraction))))
  if n_val >= n:
    raise InputError(f'only {n} rows: too few to hold out {n_val} for validation')
  rng = np.random.default_rng([seed, 0x5917])
  rows = []
  for block in rng.permutation(-(-n // block_rows)):
    start = int(block) * block_rows
    rows.append(np.arange(start, min(n, start + block_rows)))
    if sum(len(r) for r in rows) >= n_val:
      break
  rows[-1] = rows[-1][:n_val - sum(len(r) for r in rows[:-1])]
  return np.sort(np.concatenate(rows))


def interior_rows(rows_sorted, n, margin):
  """The rows of `rows_sorted` more than `margin` rows from any row outside it
  (the file's ends do not count): the heart of each held-out block, from
  tracks the model did not see even in part."""
  runs = np.split(rows_sorted, np.flatnonzero(np.diff(rows_sorted) != 1) + 1)
  keep = [r[(r >= r[0] + (margin if r[0] > 0 else 0)) &
            (r <= r[-1] - (margin if r[-1] < n - 1 else 0))] for r in runs if len(r)]
  return np.concatenate(keep) if keep else rows_sorted[:0]


def rows_far_from(rows_sorted, n, count, distance, rng):
  """Up to `count` rows of `n` in random order, none within `distance` of
  `rows_sorted`: rows from other tracks than the held-out ones, as far as
  positions can tell (a track can be longer than a block, and music repeats
  within one, so `distance` is best a few blocks)."""
  candidates = rng.permutation(n) if n <= 4 * count else rng.choice(n, 4 * count, replace=False)
  i = np.searchsorted(rows_sorted, candidates)
  left = rows_sorted[np.maximum(i - 1, 0)]
  right = rows_sorted[np.minimum(i, len(rows_sorted) - 1)]
  far = np.minimum(np.abs(candidates - left), np.abs(right - candidates)) > distance
  return candidates[far][:count]


class TrainStream:
  """Epochs of shuffled, normalised training batches; deterministic in (seed, epoch).

  Small files are read once into memory and fully permuted each epoch. Large
  ones are read in blocks: the block order is permuted, `buffer_rows` worth of
  blocks are read and their rows permuted together, so peak memory is about
  one buffer whatever the file size.
  """

  def __init__(self, emb, stats, val_rows, batch_size, seed,
               in_memory_max_gb=4.0, buffer_rows=1 << 18, blocks_per_buffer=8):
    self.emb, self.stats = emb, stats
    self.batch_size, self.seed = batch_size, seed
    self.is_val = np.zeros(emb.n, bool)
    self.is_val[val_rows] = True
    self.n_train = emb.n - len(val_rows)
    if self.n_train < batch_size:
      raise InputError(f'{emb.path}: {self.n_train} training rows, fewer than one batch '
                       f'of {batch_size}; lower train.batch_size')
    self.in_memory = emb.nbytes <= in_memory_max_gb * 2**30
    self.block_rows = max(1, buffer_rows // blocks_per_buffer)
    self.blocks_per_buffer = blocks_per_buffer
    self._x = None
    if self.in_memory:
      self._x = stats.normalize(emb.read(0, emb.n)[~self.is_val])

  @property
  def steps_per_epoch(self):
    return self.n_train // self.batch_size

  def epoch(self, epoch, skip=0):
    """Yields the batches `[batch, dim]` of one epoch, after skipping `skip`."""
    rng = np.random.default_rng([self.seed, epoch])
    batches = self._memory_batches(rng) if self.in_memory else self._stream_batches(rng)
    for i, batch in enumerate(batches):
      if i >= skip:
        yield batch

  def _memory_batches(self, rng):
    perm = rng.permutation(self.n_train)
    for i in range(self.steps_per_epoch):
      yield self._x[perm[i * self.batch_size:(i + 1) * self.batch_size]]

  def _stream_batches(self, rng):
    n_blocks = -(-self.emb.n // self.block_rows)
    order = rng.permutation(n_blocks)
    carry = np.zeros((0, self.emb.dim), np.float32)
    emitted = 0
    for g in range(0, n_blocks, self.blocks_per_buffer):
      parts = [carry]
      for b in order[g:g + self.blocks_per_buffer]:
        start = int(b) * self.block_rows
        x = self.emb.read(start, start + self.block_rows)
        parts.append(self.stats.normalize(x[~self.is_val[start:start + len(x)]]))
      buf = np.concatenate(parts)
      del parts
      rng.shuffle(buf)  # In place: peak memory stays at two buffers.
      full = len(buf) // self.batch_size * self.batch_size
      for i in range(0, full, self.batch_size):
        if emitted == self.steps_per_epoch:
          return
        emitted += 1
        yield buf[i:i + self.batch_size]
      carry = buf[full:]
