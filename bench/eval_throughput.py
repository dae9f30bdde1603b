"""Throughput and memory of evaluate.py's retrieval at one distractor count.

  python bench/eval_throughput.py --distractors 1000000
  python bench/eval_throughput.py --distractors 10000000 --queries 500 --json out.json

Random unit vectors stand in for fingerprints: distractors are written once to
SCRATCH as float16 shards in the rfp.sample_folder layout (reused on the next run) and
read back the way evaluate.py reads synthetic rows. The database (references +
distractors) is streamed into the same IVF-PQ index evaluate.py builds, then
all queries are searched with

  raw    one faiss search call for every query (the floor), and
  ours   rfp.retrieval.search: the same search in batches plus exact
         re-ranking of the top-k from the shards on disk,

interleaved, best of --rounds. Reports queries/s of both and their ratio
(goal: ours within 1.2x of raw; the re-ranking is also timed alone, since other
load on the machine makes the two searches' times noisy), build times, and peak memory from
resource.getrusage next to the index codes' size. --hardness also times
evaluate.py's exact best-distractor pass (queries x distractors inner products).
Uses the GPU when faiss has one (float16 lookup tables for 64-byte codes).
Random vectors spread evenly over the IVF cells; real fingerprints do not, so
real searches scan more codes per query at the same nprobe.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import platform
import resource
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rfp import retrieval, rows as rows_lib, sample_folder  # pylint: disable=wrong-import-position
from rfp.evaluation import hardness  # pylint: disable=wrong-import-position

SHARD_ROWS = 1 << 20
BLOCK_ROWS = 1 << 16  # Rows generated at a time: writing stays out of the memory peak.


def _unit(rng, n, dim):
  x = rng.standard_normal((n, dim), dtype=np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x


def write_distractors(folder, n, dim, seed):
  """Random unit rows as float16 shards + manifest; reused if already complete."""
  folder = pathlib.Path(folder)
  manifest_path = folder / 'manifest.json'
  rows = [min(SHARD_ROWS, n - s) for s in range(0, n, SHARD_ROWS)]
  manifest = {'n': n, 'shards': len(rows), 'rows_per_shard': rows, 'dim': dim,
              'dtype': 'float16', 'seed': seed, 'source': 'random unit vectors (benchmark)'}
  if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
    return 0.0
  folder.mkdir(parents=True, exist_ok=True)

  def write(i):
    rng = np.random.default_rng([seed, i])
    with open(sample_folder.shard_path(folder, i), 'wb') as f:
      np.lib.format.write_array_header_1_0(f, {'descr': np.lib.format.dtype_to_descr(
          np.dtype(np.float16)), 'fortran_order': False, 'shape': (rows[i], dim)})
      for start in range(0, rows[i], BLOCK_ROWS):
        f.write(_unit(rng, min(BLOCK_ROWS, rows[i] - start), dim).astype(np.float16).tobytes())

  t0 = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(write, range(len(rows))))
  manifest_path.write_text(json.dumps(manifest))
  return time.perf_counter() - t0


def _rss_gb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.


def _cpu():
  for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
    if line.startswith('model name'):
      return line.split(':', 1)[1].strip()
  return platform.processor()


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--distractors', type=int, default=1_000_000)
  parser.add_argument('--references', type=int, default=30_000)
  parser.add_argument('--queries', type=int, default=2_000)
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--nlist', type=int, default=256)
  parser.add_argument('--nprobe', type=int, default=40)
  parser.add_argument('--code-bytes', type=int, default=64)
  parser.add_argument('--bits', type=int, default=8)
  parser.add_argument('--k', type=int, default=20)
  parser.add_argument('--train-rows', type=int, default=100_000)
  parser.add_argument('--rounds', type=int, default=3, help='timed searches of each kind')
  parser.add_argument('--hardness', action='store_true',
                      help="also time evaluate.py's exact best-distractor pass")
  parser.add_argument('--scratch', default='/tmp/rfp-bench', help='where distractor shards go')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', default=None, metavar='FILE', help='also write the results here')
  args = parser.parse_args()

  folder = pathlib.Path(args.scratch) / f'distractors-{args.distractors}-{args.dim}'
  t_write = write_distractors(folder, args.distractors, args.dim, args.seed)
  distractors = rows_lib.Stack([sample_folder.shard_rows(a)
                                 for a in sample_folder.open_samples(folder)])
  rng = np.random.default_rng([args.seed, 1])
  refs = _unit(rng, args.references, args.dim)
  gt = rng.choice(args.references, args.queries, replace=False)
  q = _unit(rng, args.queries, args.dim) * 0.5 + refs[gt]
  q /= np.linalg.norm(q, axis=1, keepdims=True)
  db = rows_lib.Stack([rows_lib.ArrayRows(refs), distractors])
  spec = retrieval.IndexSpec(args.nlist, args.nprobe, args.code_bytes, args.bits, args.k,
                             args.train_rows)
  rss_before = _rss_gb()

  best = hardness.BestScores(q)
  first_chunk_done, hardness_s = None, 0.0

  def on_chunk(start, x):
    nonlocal first_chunk_done, hardness_s
    # build_index calls this after adding each chunk, so the "train" time below
    # also holds the first chunk's read and add (one chunk of many).
    first_chunk_done = first_chunk_done or time.perf_counter()
    if args.hardness and start + len(x) > args.references:
      t = time.perf_counter()
      best.update(x[max(0, args.references - start):])
      hardness_s += time.perf_counter() - t

  t0 = time.perf_counter()
  index = retrieval.build_index(db, spec, np.random.default_rng(0), on_chunk=on_chunk)
  t_build = time.perf_counter() - t0
  t_train = first_chunk_done - t0
  t_hardness = hardness_s
  t_add = t_build - t_train - t_hardness
  rss_built = _rss_gb()

  # Interleaved so that load from other processes hits both alike; the re-ranking
  # alone is also timed on the raw search's candidates, which is less noisy.
  raw_s, ours_s, rerank_s = [], [], []
  for _ in range(args.rounds):
    t = time.perf_counter()
    _, raw_ids = index.faiss_index.search(q, args.k)
    raw_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    ids, _ = retrieval.search(index, q, db, args.k)
    ours_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    retrieval.rerank(q, raw_ids, db)
    rerank_s.append(time.perf_counter() - t)
  hr1 = float(np.mean(ids[:, 0] == gt))

  n_db = index.ntotal
  out = {
      'machine': {'cpu': _cpu(), 'cores': os.cpu_count(),
                  'memory_gb': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
                                     / 2**30, 1), **retrieval.backend()},
      'database': {'references': args.references, 'distractors': args.distractors,
                   'total': n_db, 'queries': args.queries, 'dim': args.dim},
      'index': index.settings | {'k': args.k},
      'seconds': {'write_distractors': round(t_write, 1), 'train': round(t_train, 1),
                  'add': round(t_add, 1), 'hardness': round(t_hardness, 1) if args.hardness else None,
                  'search_raw_best': round(min(raw_s), 3), 'search_ours_best': round(min(ours_s), 3),
                  'rerank_best': round(min(rerank_s), 3)},
      'add_rows_per_s': round(n_db / t_add),
      'hardness_rows_per_s': round(args.distractors / t_hardness) if args.hardness else None,
      'queries_per_s': {'raw': round(args.queries / min(raw_s), 1),
                        'ours': round(args.queries / min(ours_s), 1)},
      'ours_over_raw_time': round(min(ours_s) / min(raw_s), 3),
      'ours_over_raw_from_rerank': round((min(raw_s) + min(rerank_s)) / min(raw_s), 3),
      'hr1': hr1,
      'memory_gb': {'index_codes': round(n_db * (index.settings['subquantizers'] * args.bits / 8
                                                 + 8) / 2**30, 2),
                    'peak_rss_before_index': round(rss_before, 2),
                    'peak_rss_after_build': round(rss_built, 2),
                    'peak_rss_end': round(_rss_gb(), 2)},
  }
  text = json.dumps(out, indent=2)
  print(text)
  if args.json:
    pathlib.Path(args.json).write_text(text + '\n')


if __name__ == '__main__':
  main()
