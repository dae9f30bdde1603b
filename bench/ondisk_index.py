"""The index built in parts by separate processes and merged on disk, against one process.

  python bench/ondisk_index.py --distractors 2000000 --parts 4
  python bench/ondisk_index.py --distractors 8000000 --parts 8 --processes 4 --json out.json

Random unit vectors stand in for fingerprints (float16 shards in the
rfp.sample_folder layout, as bench/eval_throughput.py writes them, reused on
the next run). With the same trained index (rfp.index_parts.train, on
--train-rows rows), the database (references + distractors) is indexed

  parts    by --parts separate processes (--processes at a time, one faiss
           thread each), each adding its shards (rfp.index_parts.add_part),
           then merged into one index whose inverted lists stay on disk
           (rfp.index_parts.merge: faiss.contrib.ondisk.merge_ondisk), and
  single   by this process alone (rfp.retrieval.build_index), in memory;

and the queries are searched on both with exact re-ranking
(rfp.retrieval.search). Reports the times of each step, rows/s per part
process, file sizes against the (code + id) arithmetic, peak memory of this
process and of the largest part process, whether both find the same ids, and
HR@1 of each.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import eval_throughput  # pylint: disable=wrong-import-position  (bench/, beside this file)
from rfp import data, index_parts, retrieval, sample_folder  # pylint: disable=wrong-import-position

ADD_PART = ('import sys\n'
            'from rfp import data, index_parts, sample_folder\n'
            'shards = [sample_folder.shard_rows(a) for a in sample_folder.open_samples(sys.argv[1])]\n'
            'index_parts.add_part(sys.argv[2], data.open_embeddings(sys.argv[3]), shards,\n'
            '                     int(sys.argv[4]), int(sys.argv[5]))\n')


def _gb(nbytes):
  return round(nbytes / 2**30, 3)


def build_parts(samples, folder, refs_path, parts, processes):
  """Runs every part as its own process, `processes` at a time; returns seconds."""
  root = pathlib.Path(__file__).resolve().parent.parent
  env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(root)}
  t0 = time.perf_counter()
  for wave in range(0, parts, processes):
    procs = [subprocess.Popen([sys.executable, '-c', ADD_PART, str(samples), str(folder),
                               str(refs_path), str(p), str(parts)], env=env, cwd=root)
             for p in range(wave, min(parts, wave + processes))]
    if any(proc.wait() for proc in procs):
      raise SystemExit('a part process failed')
  return time.perf_counter() - t0


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--distractors', type=int, default=2_000_000)
  parser.add_argument('--shard-rows', type=int, default=1 << 19)
  parser.add_argument('--references', type=int, default=30_000)
  parser.add_argument('--queries', type=int, default=1_000)
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--parts', type=int, default=4)
  parser.add_argument('--processes', type=int, default=2, help='part processes at a time')
  parser.add_argument('--nlist', type=int, default=256)
  parser.add_argument('--nprobe', type=int, default=40)
  parser.add_argument('--code-bytes', type=int, default=64)
  parser.add_argument('--bits', type=int, default=8)
  parser.add_argument('--k', type=int, default=20)
  parser.add_argument('--train-rows', type=int, default=100_000)
  parser.add_argument('--scratch', default='/tmp/rfp-bench', help='where shards and indexes go')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', default=None, metavar='FILE', help='also write the results here')
  args = parser.parse_args()

  scratch = pathlib.Path(args.scratch)
  samples = scratch / f'distractors-{args.distractors}-{args.dim}-{args.shard_rows}'
  eval_throughput.SHARD_ROWS = args.shard_rows  # Several shards, so that parts differ.
  eval_throughput.write_distractors(samples, args.distractors, args.dim, args.seed)
  shards = [sample_folder.shard_rows(a) for a in sample_folder.open_samples(samples)]
  rng = np.random.default_rng([args.seed, 1])
  refs_path = scratch / f'refs-{args.references}-{args.dim}-{args.seed}.npy'
  np.save(refs_path, eval_throughput._unit(rng, args.references, args.dim))  # pylint: disable=protected-access
  reference = data.open_embeddings(refs_path)
  gt = rng.choice(args.references, args.queries, replace=False)
  q = eval_throughput._unit(rng, args.queries, args.dim) * 0.5 + reference.take(gt)  # pylint: disable=protected-access
  q /= np.linalg.norm(q, axis=1, keepdims=True)
  db = index_parts.database(reference, shards)
  spec = retrieval.IndexSpec(args.nlist, args.nprobe, args.code_bytes, args.bits, args.k,
                             args.train_rows)
  folder = scratch / f'index-{db.n}-{args.dim}-{args.parts}'
  if folder.exists():
    raise SystemExit(f'{folder}: exists; delete it to measure every step again')

  t = time.perf_counter()
  info = index_parts.train(folder, reference, shards, spec, np.random.default_rng(0))
  t_train = time.perf_counter() - t
  t_parts = build_parts(samples, folder, refs_path, args.parts, args.processes)
  t = time.perf_counter()
  index_parts.merge(folder, args.parts)
  t_merge = time.perf_counter() - t
  merged = index_parts.MergedIndex(folder)

  trained = retrieval.Index.read(folder / index_parts.TRAINED, info['settings'], gpu=False)
  t = time.perf_counter()
  single = retrieval.build_index(db, spec, None, trained=trained)
  t_single = time.perf_counter() - t

  searched = {}
  for name, index in (('merged', merged), ('single', single)):
    t = time.perf_counter()
    ids, _ = retrieval.search(index, q, db, args.k)
    searched[name] = (ids, time.perf_counter() - t)
  same = float(np.mean(searched['merged'][0] == searched['single'][0]))

  parts_bytes = sum(index_parts.part_path(folder, p, args.parts).stat().st_size
                    for p in range(args.parts))
  out = {
      'machine': {'cpu': eval_throughput._cpu(), 'cores': os.cpu_count(),  # pylint: disable=protected-access
                  'load_average_1min': round(os.getloadavg()[0], 1), **retrieval.backend()},
      'database': {'references': args.references, 'distractors': args.distractors,
                   'shards': len(shards), 'total': db.n, 'queries': args.queries,
                   'dim': args.dim},
      'index': info['settings'] | {'k': args.k},
      'parts': args.parts, 'processes_at_a_time': args.processes,
      'seconds': {'train': round(t_train, 1), 'parts': round(t_parts, 1),
                  'merge': round(t_merge, 1), 'single_build': round(t_single, 1),
                  'search_merged': round(searched['merged'][1], 2),
                  'search_single': round(searched['single'][1], 2)},
      'add_rows_per_s': {'per_part_process': round(db.n / t_parts / args.processes),
                         'single_process': round(db.n / t_single)},
      'same_ids': same,
      'hr1': {name: float(np.mean(ids[:, 0] == gt)) for name, (ids, _) in searched.items()},
      'disk_gb': {'parts': _gb(parts_bytes),
                  'merged_ivfdata': _gb((folder / index_parts.MERGED_DATA).stat().st_size),
                  'codes_and_ids': _gb(db.n * (args.code_bytes + index_parts.ID_BYTES))},
      'peak_rss_gb': {'this_process': round(eval_throughput._rss_gb(), 2),  # pylint: disable=protected-access
                      'largest_part_process': round(resource.getrusage(
                          resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)},
  }
  text = json.dumps(out, indent=2)
  print(text)
  if args.json:
    pathlib.Path(args.json).write_text(text + '\n')


if __name__ == '__main__':
  main()
