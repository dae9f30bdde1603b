"""Row sources: anything that yields `[rows, dim]` float32 embeddings.

A row source has `n`, `dim`, `read(start, stop)` and `take(rows)` (both
float32 `[rows, dim]`) and streams in order through `chunks()`. Embedding
files (`rfp.data.Embeddings`) are one; the views below compose sources
without copying, so a database of references plus 100M distractors is a
`Stack` of files, never an array in memory.
"""

import contextlib

import numpy as np
from tqdm import tqdm

from rfp.errors import InputError

CHUNK_ROWS = 1 << 16
# Queries per index search (`rfp.retrieval`, `rfp.evaluation.sequences`): each
# scans nprobe/nlist of the database (15% at the systems' settings), so at 100M
# rows a batch takes a minute or two on a CPU, and the progress shown between
# batches stays alive.
SEARCH_BATCH = 512


class Rows:
  """Base of row sources; subclasses define `n`, `dim`, `read` and `take`."""

  def chunks(self, chunk_rows=CHUNK_ROWS):
    """Yields (start, rows `[<=chunk_rows, dim]` float32) over all rows, in order."""
    for start in range(0, self.n, chunk_rows):
      yield start, self.read(start, start + chunk_rows)


def take_rows(array_nd, rows):
  """Arbitrary rows (any order) of an array or memmap as float32; the reads are
  sorted, which keeps a memory map's accesses sequential."""
  rows = np.asarray(rows, dtype=np.int64)
  order = np.argsort(rows)
  out = np.empty((len(rows), array_nd.shape[1]), np.float32)
  out[order] = array_nd[rows[order]]
  return out


def sample_rows(n, count, rng):
  """`count` distinct sorted row ids out of `n`."""
  return np.sort(rng.choice(n, size=min(count, n), replace=False))


def check_finite(x_nd, name, rows):
  """InputError naming the first row of `x_nd` (file row ids `rows`) with NaN or Inf."""
  bad = ~np.isfinite(x_nd).all(1)
  if bad.any():
    raise InputError(f'{name}: row {rows[np.argmax(bad)]} holds NaN or Inf')


def _bar(rows, desc, progress):
  return tqdm(total=rows, desc=desc, unit='row', unit_scale=True, dynamic_ncols=True,
              mininterval=0.5, leave=False, disable=not progress)


def finite_chunks(source, name, progress=False, desc='NaN/Inf check', chunk_rows=CHUNK_ROWS,
                  bar=None):
  """`source.chunks()`, each checked by `check_finite` (naming `name` and the row)
  as it streams past, with a progress bar (its own, or `bar`): a pass that
  reads the rows for another purpose checks them at no extra cost."""
  with contextlib.nullcontext(bar) if bar is not None else _bar(source.n, desc, progress) as bar:
    for start, x in Checked(source, name).chunks(chunk_rows):
      bar.update(len(x))
      yield start, x


def check_files_finite(files, progress=False):
  """One streaming pass over the embedding files (`rfp.data.Embeddings`), under
  one progress bar: an InputError names the file and row of the first NaN or
  Inf, before any of its rows is used."""
  names = files[0].path.name if len(files) == 1 else f'{len(files)} files'
  with _bar(sum(emb.n for emb in files), f'NaN/Inf check of {names}', progress) as bar:
    for emb in files:
      for _ in finite_chunks(emb, emb.path, bar=bar):
        pass


class ArrayRows(Rows):
  """An in-memory or memory-mapped `[n, dim]` array as a row source."""

  def __init__(self, array_nd):
    self.array = array_nd
    self.n, self.dim = array_nd.shape

  def read(self, start, stop):
    return np.asarray(self.array[start:stop], np.float32)

  def take(self, rows):
    return take_rows(self.array, rows)


class Stack(Rows):
  """Row sources one after another (references then distractors; shards)."""

  def __init__(self, parts):
    self.parts = list(parts)
    self.dim = self.parts[0].dim
    self.offsets = np.cumsum([0] + [p.n for p in self.parts])
    self.n = int(self.offsets[-1])

  def read(self, start, stop):
    stop = min(stop, self.n)
    pieces = []
    for part, lo in zip(self.parts, self.offsets[:-1]):
      a, b = max(start, lo), min(stop, lo + part.n)
      if a < b:
        pieces.append(part.read(a - lo, b - lo))
    return np.concatenate(pieces) if pieces else np.zeros((0, self.dim), np.float32)

  def take(self, rows):
    rows = np.asarray(rows, np.int64)
    which = np.searchsorted(self.offsets, rows, side='right') - 1
    out = np.empty((len(rows), self.dim), np.float32)
    for i in np.unique(which):
      mask = which == i
      out[mask] = self.parts[i].take(rows[mask] - self.offsets[i])
    return out


class Checked(Rows):
  """`source` with every row it returns checked by `check_finite` (naming
  `name` and the row): passes that read the rows for another purpose check
  them as they go, with no pass of their own."""

  def __init__(self, source, name):
    self.source, self.name = source, name
    self.n, self.dim = source.n, source.dim

  def read(self, start, stop):
    x_nd = self.source.read(start, stop)
    check_finite(x_nd, self.name, range(start, start + len(x_nd)))
    return x_nd

  def take(self, rows):
    x_nd = self.source.take(rows)
    check_finite(x_nd, self.name, np.asarray(rows, np.int64))
    return x_nd


class Subset(Rows):
  """The rows of `base` listed in `rows` (sorted for sequential reads)."""

  def __init__(self, base, rows):
    self.base, self.rows = base, np.asarray(rows, np.int64)
    self.n, self.dim = len(self.rows), base.dim

  def read(self, start, stop):
    return self.base.take(self.rows[start:stop])

  def take(self, rows):
    return self.base.take(self.rows[np.asarray(rows, np.int64)])


class Slice(Rows):
  """Rows [start, stop) of `base`, without listing them."""

  def __init__(self, base, start, stop):
    self.base, self.start = base, start
    self.n, self.dim = stop - start, base.dim

  def read(self, start, stop):
    return self.base.read(self.start + start, self.start + min(stop, self.n))

  def take(self, rows):
    return self.base.take(np.asarray(rows, np.int64) + self.start)
