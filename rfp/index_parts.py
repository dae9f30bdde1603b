"""An IVF-PQ index built in parts by several processes and merged on disk.

faiss's recipe for databases past one machine (its benchs/distributed_ondisk
and `faiss.contrib.ondisk`): train the index once on a sample and write it
empty; each process adds its own rows to a copy, with global ids, and writes
it as a part; the parts' inverted lists are then merged into one file that
search reads through a memory map, so neither building nor searching needs
the codes in memory.

    FOLDER/trained.index               the trained IVF-PQ index, without rows
    FOLDER/trained.json                its settings and the database it is for
    FOLDER/part-00000-of-00004.index   part p of P: the codes and ids of its rows
    FOLDER/merged.index                all parts: quantizers and list offsets
    FOLDER/merged.ivfdata              all parts: the inverted lists (codes, ids)

The database is the references followed by the shards of a sample folder; a
row's id is its position there, which `retrieval.rerank` reads back. Part p
adds shard i when i % P == p, the shards that process p of P writes in
`rfp.sampling`, and part 0 also adds the references. Every file is written
under a temporary name and renamed when complete: a step that was cut off is
redone, a finished one is not.
"""

import dataclasses
import os
import pathlib
import sys

import faiss
from faiss.contrib.ondisk import merge_ondisk
import numpy as np
from tqdm import tqdm

from rfp import files, retrieval, rows as rows_lib
from rfp.errors import InputError

FORMAT = 'rfp-index-parts/1'
TRAINED, TRAINED_JSON = 'trained.index', 'trained.json'
MERGED, MERGED_DATA = 'merged.index', 'merged.ivfdata'
IDENTITY = ('format', 'rows', 'dim', 'spec', 'identity')
ID_BYTES = 8  # An inverted list stores an int64 id beside each code.


def database(reference, shards):
  """The searched rows as one row source: the references, then the shards in order."""
  return rows_lib.Stack([reference, *shards])


def part_path(folder, part, parts):
  return pathlib.Path(folder) / f'part-{part:05d}-of-{parts:05d}.index'


def which_part(part=None, parts=None, environ=None):
  """(part, parts) of this process.

  Given values win; else a SLURM array task (SLURM_ARRAY_TASK_ID from
  SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT), else a SLURM task
  (SLURM_PROCID of SLURM_NTASKS), else the `jax.distributed` process when JAX
  is loaded (the processes that sampled), else (0, 1).
  """
  env = os.environ if environ is None else environ
  if part is None and parts is None:
    if 'SLURM_ARRAY_TASK_ID' in env:
      part = int(env['SLURM_ARRAY_TASK_ID']) - int(env.get('SLURM_ARRAY_TASK_MIN', 0))
      parts = int(env['SLURM_ARRAY_TASK_COUNT'])
    elif 'SLURM_PROCID' in env:
      part, parts = int(env['SLURM_PROCID']), int(env['SLURM_NTASKS'])
    elif 'jax' in sys.modules:
      jax = sys.modules['jax']
      part, parts = jax.process_index(), jax.process_count()
    else:
      part, parts = 0, 1
  if part is None or parts is None or not 0 <= part < parts:
    raise InputError(f'index part {part} of {parts}: expected 0 <= part < parts')
  return part, parts


def _layout(reference, shards):
  return {'rows': [reference.n] + [s.n for s in shards], 'dim': reference.dim}


def read_trained(folder):
  """trained.json of an index folder; InputError (one line) if there is none."""
  path = pathlib.Path(folder) / TRAINED_JSON
  if not path.is_file():
    raise InputError(f'{folder}: no {TRAINED_JSON}; train the index first (index_parts.train)')
  try:
    return files.read_json(path)
  except ValueError as e:
    raise InputError(f'{path}: unreadable ({e}); delete the folder and train again') from e


def train(folder, reference, shards, spec, rng, identity=None, progress=False, trained=None):
  """Trains the index once on `spec.train_rows` random rows of the database and writes it.

  `identity` (a JSON dict, e.g. the samples' seed and checkpoint) must match
  too when the folder is reused. A folder trained for this database and these
  settings is kept as it is; one trained for another is refused. `trained` (a
  `retrieval.Index`) is written as it is instead of training one. Returns the
  contents of trained.json.
  """
  folder = pathlib.Path(folder)
  info = {'format': FORMAT, **_layout(reference, shards), 'spec': dataclasses.asdict(spec),
          'identity': identity or {}}
  if (folder / TRAINED_JSON).exists():
    old = read_trained(folder)
    files.check_same_settings(folder, old, info, IDENTITY, 'an index', 'index folder')
    return old
  files.check_output(folder)
  folder.mkdir(parents=True, exist_ok=True)
  db = database(reference, shards)
  with tqdm(total=1, desc=f'training the index on {min(spec.train_rows, db.n):,} rows',
            bar_format='{desc} ({elapsed})', disable=not progress or trained is not None) as bar:
    index = trained or retrieval.train_index(db, spec, rng, gpu=False)
    bar.update()
  with files.atomic_path(folder / TRAINED) as tmp:
    index.write(tmp)
  info['settings'] = index.settings
  files.write_json(folder / TRAINED_JSON, info)  # Written last: it marks the step done.
  return info


def part_pieces(n_shards, part, parts):
  """Database pieces (0: the references, 1 + i: shard i) that part `part` of `parts` adds."""
  return ([0] if part == 0 else []) + [1 + i for i in range(part, n_shards, parts)]


def _check_database(folder, info, reference, shards):
  files.check_same_settings(folder, info, _layout(reference, shards), ('rows', 'dim'),
                            'an index', 'index folder')


def add_part(folder, reference, shards, part, parts, progress=False, on_chunk=None,
             chunk_rows=rows_lib.CHUNK_ROWS):
  """Adds this part's rows (`part_pieces`) to a copy of the trained index and writes it.

  Ids are global (positions in `database`). Runs on the CPU, whatever the
  training ran on, so a part's codes do not depend on the machine.
  `on_chunk(start, x)` sees each chunk after it is added, `start` its global
  id (e.g. to score this part's distractors exactly in the same pass). A part
  already written is kept, and nothing is read. Returns its path.
  """
  folder = pathlib.Path(folder)
  info = read_trained(folder)
  _check_database(folder, info, reference, shards)
  path = part_path(folder, part, parts)
  if path.exists():
    return path
  pieces = [reference, *shards]
  offsets = np.cumsum([0] + info['rows'])
  mine = part_pieces(len(shards), part, parts)
  total = sum(pieces[j].n for j in mine)
  index = faiss.read_index(str(folder / TRAINED))
  files.check_output(folder, total * (index.code_size + ID_BYTES), what=f'index part {part}')
  with tqdm(total=total, unit='row', unit_scale=True, desc=f'index part {part + 1}/{parts}',
            dynamic_ncols=True, mininterval=0.5, disable=not progress) as bar:
    for j in mine:
      for start, x in pieces[j].chunks(chunk_rows):
        index.add_with_ids(np.ascontiguousarray(x, np.float32),
                           np.arange(offsets[j] + start, offsets[j] + start + len(x)))
        if on_chunk is not None:
          on_chunk(int(offsets[j] + start), x)
        bar.update(len(x))
  with files.atomic_path(path) as tmp:
    faiss.write_index(index, str(tmp))
  return path


def _parts_in(folder):
  """The part count of the part files in `folder`; InputError unless there is exactly one."""
  counts = sorted({int(p.stem.rsplit('-', 1)[1]) for p in folder.glob('part-*-of-*.index')})
  if len(counts) != 1:
    found = f'parts of {", ".join(map(str, counts))}' if counts else 'no index parts'
    raise InputError(f'{folder}: {found}; say how many parts to merge')
  return counts[0]


def merge(folder, parts=None, progress=False):
  """Merges the part files into merged.index + merged.ivfdata (`merge_ondisk`).

  `parts` defaults to the part count of the files in `folder`. The parts are
  read through memory maps and the lists written straight to disk, so the
  database's codes never need to fit in memory. Every part must be there and
  hold its rows; the parts may be deleted afterwards. A merged index already
  written is kept. Returns the path of merged.index.
  """
  folder = pathlib.Path(folder)
  info = read_trained(folder)
  path = folder / MERGED
  if path.exists():
    return path
  parts = _parts_in(folder) if parts is None else parts
  paths = [part_path(folder, p, parts) for p in range(parts)]
  missing = [p.name for p in paths if not p.exists()]
  if missing:
    raise InputError(f'{folder}: {len(missing)} of {parts} index parts missing '
                     f'({", ".join(missing[:3])}{", ..." if len(missing) > 3 else ""}); '
                     'run their add steps first')
  n_shards = len(info['rows']) - 1
  for p, part in enumerate(paths):
    expected = sum(info['rows'][j] for j in part_pieces(n_shards, p, parts))
    found = faiss.read_index(str(part), faiss.IO_FLAG_MMAP).ntotal
    if found != expected:
      raise InputError(f'{part}: holds {found:,} rows, expected {expected:,}; '
                       'delete it and run its add step again')
  index = faiss.read_index(str(folder / TRAINED))
  data = folder / MERGED_DATA
  # A merge that was cut off left its lists behind; they are overwritten.
  reclaimable = data.stat().st_size if data.exists() else 0
  files.check_output(folder, sum(info['rows']) * (index.code_size + ID_BYTES) - reclaimable,
                     what='the merged index', hint='free space, or delete the parts of '
                     'another merged index')
  with tqdm(total=1, desc=f'merging {parts} index parts', bar_format='{desc} ({elapsed})',
            disable=not progress) as bar:
    merge_ondisk(index, [str(p) for p in paths], str(data))
    bar.update()
  with files.atomic_path(path) as tmp:
    faiss.write_index(index, str(tmp))  # It names merged.ivfdata, found beside it on reading.
  return path


class MergedIndex:
  """The merged index, searched as a `retrieval.Index` is (`retrieval.search`).

  The inverted lists stay in merged.ivfdata, read through a read-only memory
  map: memory holds the quantizers and whatever lists the page cache keeps.
  The folder may have been moved since the merge.
  """

  def __init__(self, folder):
    folder = pathlib.Path(folder)
    info = read_trained(folder)
    if not (folder / MERGED).is_file():
      raise InputError(f'{folder}: no {MERGED}; merge the index parts first (index_parts.merge)')
    self.faiss_index = faiss.read_index(
        str(folder / MERGED), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    self.faiss_index.nprobe = info['settings']['nprobe']
    self.settings = {**info['settings'], 'device': 'cpu', 'inverted_lists': 'on disk'}

  @property
  def ntotal(self):
    return self.faiss_index.ntotal

  def search(self, q_qd, k):
    """Approximate top-k ids `[q, k]` (-1 where fewer exist), in one faiss call."""
    _, ids = self.faiss_index.search(np.ascontiguousarray(q_qd, np.float32), k)
    return ids


STEPS = ('train', 'add', 'merge')


def run_step(step, folder, reference, shards, spec, seed, part=None, parts=None,
             progress=False):
  """One step of the recipe, as `evaluate.py --index-step` runs it: `train`
  (once), `add` (this process's part, `which_part`) or `merge`; returns what
  it wrote."""
  if step == 'train':
    train(folder, reference, shards, spec, np.random.default_rng([seed, 4]), progress=progress)
    return pathlib.Path(folder) / TRAINED
  if step == 'add':
    return add_part(folder, reference, shards, *which_part(part, parts), progress=progress)
  if step == 'merge':
    return merge(folder, parts, progress=progress)
  raise InputError(f'index step {step!r}: expected one of {", ".join(STEPS)}')


def open_merged(folder, reference, shards):
  """`MergedIndex` of `folder`, checked to hold exactly these references and shards."""
  folder = pathlib.Path(folder)
  _check_database(folder, read_trained(folder), reference, shards)
  return MergedIndex(folder)
