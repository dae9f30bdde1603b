"""An IVF-PQ index built in parts by separate processes, merged on disk."""

import os
import shutil
import subprocess
import sys

import faiss
from faiss.contrib.inspect_tools import get_invlist
import numpy as np
import pytest

from conftest import ROOT, SCRIPT_ENV, unit_rows
from rfp import data, index_parts, retrieval
from rfp.errors import InputError

DIM = 64
# A process of a SLURM job step: it finds its part in SLURM_PROCID / SLURM_NTASKS.
ADD_PART = ('import pathlib, sys\n'
            'from rfp import data, index_parts\n'
            'root = pathlib.Path(sys.argv[1])\n'
            'shards = [data.open_embeddings(p) for p in sorted(root.glob("shard-*.npy"))]\n'
            'index_parts.add_part(sys.argv[2], data.open_embeddings(root / "refs.npy"), shards,\n'
            '                     *index_parts.which_part())\n')


def _spec(**kw):
  return retrieval.IndexSpec(**{'nlist': 64, 'nprobe': 8, 'code_bytes': 8, 'bits': 8,
                                'k': 20, 'train_rows': 5_000, **kw})


@pytest.fixture(scope='module')
def files_and_index(tmp_path_factory):
  """2,000 float32 references and four float16 shards (20,000 rows of 64 dims) in
  files, and an index folder trained for them (training once keeps the tests fast)."""
  root = tmp_path_factory.mktemp('db')
  np.save(root / 'refs.npy', unit_rows(2000, DIM, 1))
  for i in range(4):
    np.save(root / f'shard-{i:05d}.npy', unit_rows(4500, DIM, 10 + i, np.float16))
  reference, shards = _open(root)
  index_parts.train(root / 'trained', reference, shards, _spec(), np.random.default_rng(0))
  return root


def _open(root):
  return (data.open_embeddings(root / 'refs.npy'),
          [data.open_embeddings(root / f'shard-{i:05d}.npy') for i in range(4)])


@pytest.fixture
def database(files_and_index, tmp_path):
  """(index folder holding only the trained index, references, shards, queries, ground truth)."""
  folder = tmp_path / 'index'
  shutil.copytree(files_and_index / 'trained', folder)
  reference, shards = _open(files_and_index)
  gt = np.arange(0, 2000, 4)
  q = reference.read(0, 2000)[gt] + 0.15 * unit_rows(len(gt), DIM, 2)
  return folder, reference, shards, q, gt


def _launch(root, folder, parts):
  """Each part in its own process, all at once; returns their exit codes and stderr."""
  procs = [subprocess.Popen([sys.executable, '-c', ADD_PART, str(root), str(folder)], cwd=ROOT,
                            env={**SCRIPT_ENV, 'SLURM_PROCID': str(p), 'SLURM_NTASKS': str(parts),
                                 'OMP_NUM_THREADS': '1'}, stderr=subprocess.PIPE)
           for p in range(parts)]
  return [(proc.wait(), proc.stderr.read().decode()) for proc in procs]


def test_two_processes_and_the_merge_find_what_one_process_finds(files_and_index, database):
  folder, reference, shards, q, gt = database
  info = index_parts.read_trained(folder)
  launched = _launch(files_and_index, folder, 2)
  assert [rc for rc, _ in launched] == [0, 0], launched
  index_parts.merge(folder, 2)
  merged = index_parts.MergedIndex(folder)
  db = index_parts.database(reference, shards)
  assert merged.ntotal == db.n == 20_000

  trained = retrieval.Index.read(folder / index_parts.TRAINED, info['settings'], gpu=False)
  single = retrieval.build_index(db, _spec(), np.random.default_rng(1), trained=trained)
  ids, scores = retrieval.search(merged, q, db, 20)
  want_ids, want_scores = retrieval.search(single, q, db, 20)
  np.testing.assert_array_equal(ids, want_ids)
  np.testing.assert_array_equal(scores, want_scores)
  hr1 = np.mean(ids[:, 0] == gt)
  assert hr1 == np.mean(want_ids[:, 0] == gt) and hr1 > 0.5


def test_each_part_holds_its_shards_with_global_ids(database):
  folder, reference, shards, _, _ = database
  db = index_parts.database(reference, shards)
  # Part 0: references and shards 0 and 3; part 1: shard 1; part 2: shard 2.
  offsets = np.cumsum([0, 2000] + [4500] * 4)
  expected = [np.r_[0:2000, offsets[1]:offsets[2], offsets[4]:offsets[5]],
              np.r_[offsets[2]:offsets[3]], np.r_[offsets[3]:offsets[4]]]
  for p, want in enumerate(expected):
    seen = []
    index_parts.add_part(folder, reference, shards, p, 3, chunk_rows=3000,
                         on_chunk=lambda start, x: seen.append((start, x)))
    index = faiss.read_index(str(index_parts.part_path(folder, p, 3)))
    invlists = faiss.extract_index_ivf(index).invlists
    ids = np.concatenate([get_invlist(invlists, c)[0] for c in range(invlists.nlist)])
    np.testing.assert_array_equal(np.sort(ids), want)
    # on_chunk saw the rows it added, each chunk at its global position.
    np.testing.assert_array_equal(
        np.concatenate([np.arange(start, start + len(x)) for start, x in seen]), want)
    for start, x in seen:
      np.testing.assert_array_equal(x, db.read(start, start + len(x)))


def test_finished_steps_are_kept_and_cut_off_ones_redone(database):
  folder, reference, shards, q, _ = database
  spec = _spec()
  trained_at = os.stat(folder / index_parts.TRAINED).st_mtime_ns
  index_parts.train(folder, reference, shards, spec, np.random.default_rng(5))
  assert os.stat(folder / index_parts.TRAINED).st_mtime_ns == trained_at
  first = index_parts.add_part(folder, reference, shards, 0, 2)
  written_at = os.stat(first).st_mtime_ns
  index_parts.add_part(folder, reference, shards, 0, 2)
  assert os.stat(first).st_mtime_ns == written_at
  with pytest.raises(InputError, match='1 of 2 index parts missing.*part-00001-of-00002'):
    index_parts.merge(folder, 2)
  index_parts.add_part(folder, reference, shards, 1, 2)
  index_parts.merge(folder)  # Two parts: the files say so.
  db = index_parts.database(reference, shards)
  before = retrieval.search(index_parts.MergedIndex(folder), q, db, 20)[0]
  # A merge cut off after writing its lists (merged.index is renamed in last).
  (folder / index_parts.MERGED).unlink()
  index_parts.merge(folder, 2)
  np.testing.assert_array_equal(retrieval.search(index_parts.MergedIndex(folder), q, db, 20)[0],
                                before)


def test_a_folder_for_another_database_or_settings_is_refused(database):
  folder, reference, shards, _, _ = database
  with pytest.raises(InputError, match='holds an index made with other settings.*spec'):
    index_parts.train(folder, reference, shards, _spec(nprobe=4), np.random.default_rng(0))
  with pytest.raises(InputError, match='other settings.*rows'):
    index_parts.add_part(folder, reference, shards[:3], 0, 2)
  with pytest.raises(InputError, match='no merged.index'):
    index_parts.MergedIndex(folder)
  with pytest.raises(InputError, match='no index parts; say how many'):
    index_parts.merge(folder)
  index_parts.add_part(folder, reference, shards, 0, 2)
  index_parts.add_part(folder, reference, shards, 2, 3)
  with pytest.raises(InputError, match='parts of 2, 3; say how many'):
    index_parts.merge(folder)
  with pytest.raises(InputError, match='no trained.json'):
    index_parts.add_part(folder.parent / 'elsewhere', reference, shards, 0, 2)


def test_a_part_with_the_wrong_rows_is_refused_at_the_merge(database):
  folder, reference, shards, _, _ = database
  index_parts.add_part(folder, reference, shards, 0, 2)
  index_parts.part_path(folder, 0, 2).rename(index_parts.part_path(folder, 1, 2))
  index_parts.add_part(folder, reference, shards, 0, 2)
  with pytest.raises(InputError, match='part-00001-of-00002.index: holds 11,000 rows, expected 9,000'):
    index_parts.merge(folder, 2)


def test_which_part_reads_the_launcher():
  assert index_parts.which_part(3, 8, {}) == (3, 8)
  assert index_parts.which_part(environ={'SLURM_PROCID': '2', 'SLURM_NTASKS': '4'}) == (2, 4)
  array = {'SLURM_ARRAY_TASK_ID': '7', 'SLURM_ARRAY_TASK_MIN': '1',
           'SLURM_ARRAY_TASK_COUNT': '16', 'SLURM_PROCID': '0', 'SLURM_NTASKS': '1'}
  assert index_parts.which_part(environ=array) == (6, 16)
  with pytest.raises(InputError, match='index part 4 of 4'):
    index_parts.which_part(4, 4)
