"""Search as the fingerprinting systems do it: IVF-PQ candidates, exact re-ranking.

A database is the reference rows followed by the distractor rows; ids are
positions in that order. FAISS IVF-PQ (L2 coarse quantizer) proposes the top-k
candidates of every query, and re-ranking orders them by exact inner product
against the raw vectors, read back from the files the rows came from. Rows
reach the index in chunks and candidates are read back by id, so memory holds
the index codes plus one chunk, never the database itself.

Databases and candidates are row sources (`rfp.rows`); this module holds
FAISS only.
"""

import ctypes
import dataclasses

import faiss
import numpy as np

from rfp.errors import InputError
from rfp.rows import CHUNK_ROWS, SEARCH_BATCH, sample_rows

# faiss warns below 39 training points per centroid (k-means quality) and
# cannot train a product quantizer with fewer points than centroids.
MIN_POINTS_PER_CENTROID = 39
# GPU IVF-PQ keeps a lookup table per sub-quantizer in shared memory; more
# than 48 of them only fit as float16. It also wants 8-bit codes and k <= 2048.
GPU_MAX_FLOAT32_SUBQUANTIZERS = 48
GPU_MAX_K = 2048
# glibc's mallopt(M_MMAP_THRESHOLD, bytes): larger blocks are mapped per allocation.
_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES = -3, 1 << 20


def _release_freed_lists():
  """faiss grows each inverted list as a std::vector, by doubling; glibc kept
  the outgrown buffers in its heap, so an index of N rows held about 1.5x its
  codes (1.24x with this). Blocks over 1 MiB are then mapped on their own and
  go back to the system when freed. A no-op off glibc."""
  try:
    ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
  except (OSError, AttributeError):
    pass


_release_freed_lists()


@dataclasses.dataclass(frozen=True)
class IndexSpec:
  """IVF-PQ settings: `nlist` cells, `code_bytes` bytes per vector of `bits`-bit codes."""
  nlist: int
  nprobe: int
  code_bytes: int
  bits: int
  k: int
  train_rows: int

  @classmethod
  def from_config(cls, cfg):
    return cls(**{f.name: int(cfg[f.name]) for f in dataclasses.fields(cls)})

  def subquantizers(self, dim):
    """Product-quantizer sub-vectors: `code_bytes * 8 / bits`; must divide `dim`."""
    for name in ('nlist', 'nprobe', 'code_bytes', 'bits', 'k', 'train_rows'):
      if getattr(self, name) < 1:
        raise InputError(f'eval.index.{name}={getattr(self, name)}: must be at least 1')
    m, rest = divmod(self.code_bytes * 8, self.bits)
    if rest or dim % m:
      raise InputError(f'eval.index.code_bytes={self.code_bytes} with bits={self.bits} gives '
                       f'{self.code_bytes * 8 / self.bits:g} sub-quantizers, which must divide '
                       f'the embedding dimension {dim}')
    return m


def use_gpu():
  return faiss.get_num_gpus() > 0


def backend():
  """What searches run on, for the record."""
  return {'faiss': faiss.__version__, 'device': 'gpu' if use_gpu() else 'cpu',
          'threads': faiss.omp_get_max_threads()}


class Index:
  """An IVF-PQ index trained on `train_nd`, on the GPU when faiss has one.

  Small training sets shrink the index rather than fail: `nlist` to one cell
  per 39 training rows and `bits` so that each sub-quantizer has at least one
  training row per centroid (such tiny indexes stay on the CPU). `settings`
  records what was actually built.
  """

  def __init__(self, spec, train_nd, gpu=None):
    n, dim = train_nd.shape
    m = spec.subquantizers(dim)
    nlist = max(1, min(spec.nlist, n // MIN_POINTS_PER_CENTROID))
    bits = max(1, min(spec.bits, int(np.log2(n))))
    gpu = (use_gpu() if gpu is None else gpu) and bits == 8 and spec.k <= GPU_MAX_K
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(dim), dim, nlist, m, bits)
    # Fewer than 39 rows per code centroid is allowed (tiny databases) and is
    # reported in `settings`, not as one stderr warning per sub-quantizer.
    index.pq.cp.min_points_per_centroid = 1
    index.train(np.ascontiguousarray(train_nd, np.float32))
    self._trained = index  # Empty and on the CPU: the template `copy` clones.
    self.gpu = gpu
    self.settings = {'nlist': nlist, 'nprobe': min(spec.nprobe, nlist), 'subquantizers': m,
                     'bits': bits, 'train_rows': n, 'device': 'gpu' if gpu else 'cpu',
                     'float16_lookup_tables': bool(gpu and m > GPU_MAX_FLOAT32_SUBQUANTIZERS),
                     'sparse_code_training': n < MIN_POINTS_PER_CENTROID * 2**bits}
    self._place()

  def _place(self):
    index = faiss.clone_index(self._trained)
    self._resources = None
    if self.gpu:
      self._resources = faiss.StandardGpuResources()
      options = faiss.GpuClonerOptions()
      options.useFloat16LookupTables = self.settings['float16_lookup_tables']
      index = faiss.index_cpu_to_gpu(self._resources, 0, index, options)
    index.nprobe = self.settings['nprobe']
    self.faiss_index = index

  def copy(self):
    """An empty index with the same trained quantizers (no training cost)."""
    new = object.__new__(Index)
    new._trained, new.gpu, new.settings = self._trained, self.gpu, dict(self.settings)
    new._place()
    return new

  def write(self, path):
    """Writes the trained quantizers, without rows (faiss.write_index): the
    template of a build in parts (`rfp.index_parts`). `Index.read` restores it."""
    faiss.write_index(self._trained, str(path))

  @classmethod
  def read(cls, path, settings, gpu=None):
    """The `Index` that `write` wrote, with the `settings` it was built with;
    placed on the GPU when faiss has one and the codes are 8-bit (the caller
    keeps k within GPU_MAX_K there)."""
    new = object.__new__(cls)
    new._trained = faiss.read_index(str(path))
    new.gpu = (use_gpu() if gpu is None else gpu) and settings['bits'] == 8
    new.settings = {**settings, 'device': 'gpu' if new.gpu else 'cpu',
                    'float16_lookup_tables': bool(
                        new.gpu and settings['subquantizers'] > GPU_MAX_FLOAT32_SUBQUANTIZERS)}
    new._place()
    return new

  @property
  def ntotal(self):
    return self.faiss_index.ntotal

  def add(self, x_nd):
    """Appends rows; their ids continue from `ntotal`."""
    self.faiss_index.add(np.ascontiguousarray(x_nd, np.float32))

  def search(self, q_qd, k):
    """Approximate top-k ids `[q, k]` (-1 where fewer exist), in one faiss call."""
    _, ids = self.faiss_index.search(np.ascontiguousarray(q_qd, np.float32), k)
    return ids


def train_index(rows, spec, rng, gpu=None):
  """An empty `Index` trained on `spec.train_rows` random rows of a row source."""
  return Index(spec, rows.take(sample_rows(rows.n, spec.train_rows, rng)), gpu)


def build_index(db, spec, rng, gpu=None, on_chunk=None, chunk_rows=CHUNK_ROWS, trained=None):
  """Trains an `Index` on `spec.train_rows` random rows of `db` and adds all of it.

  With `trained` (an `Index`), its quantizers are reused instead of training.
  Rows stream in chunks; `on_chunk(start, x)` sees each one after it is added
  (e.g. to score distractors exactly in the same pass).
  """
  index = trained.copy() if trained is not None else train_index(db, spec, rng, gpu)
  for start, x in db.chunks(chunk_rows):
    index.add(x)
    if on_chunk is not None:
      on_chunk(start, x)
  return index


def rerank(q_qd, ids_qk, db):
  """Orders candidates by exact inner product with the raw rows of `db`.

  Returns (ids, scores), both `[q, k]`, best first; missing candidates (-1)
  sort last with score -inf. Each distinct candidate row is read once.
  """
  valid = ids_qk >= 0
  unique = np.unique(ids_qk[valid])
  if len(unique) == 0:
    return ids_qk, np.full(ids_qk.shape, -np.inf, np.float32)
  rows_ud = db.take(unique)
  pos = np.searchsorted(unique, np.where(valid, ids_qk, unique[0]))
  scores = np.einsum('qd,qkd->qk', np.asarray(q_qd, np.float32), rows_ud[pos])
  scores = np.where(valid, scores, -np.inf).astype(np.float32)
  order = np.argsort(-scores, axis=1, kind='stable')
  return np.take_along_axis(ids_qk, order, 1), np.take_along_axis(scores, order, 1)


def search(index, q_qd, db, k, on_batch=None):
  """IVF-PQ top-k then exact re-ranking: (ids, scores) `[q, k]`, best first.

  Works through the queries in batches, so the candidate rows in memory are
  at most `SEARCH_BATCH * k` whatever the number of queries;
  `on_batch(queries done)` follows each one.
  """
  ids = np.empty((len(q_qd), k), np.int64)
  scores = np.empty((len(q_qd), k), np.float32)
  for i in range(0, len(q_qd), SEARCH_BATCH):
    q = q_qd[i:i + SEARCH_BATCH]
    ids[i:i + len(q)], scores[i:i + len(q)] = rerank(q, index.search(q, k), db)
    if on_batch is not None:
      on_batch(i + len(q))
  return ids, scores
