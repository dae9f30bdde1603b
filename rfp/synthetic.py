"""An evaluation's synthetic rows: found on disk, or sampled from the run.

Looks for a folder of the run's best checkpoint under WORKDIR (written by
`sample.py` or an earlier evaluation) and opens it (`rfp.sample_folder`);
only when none will do does it sample one (`rfp.sampling`), so an
evaluation of rows already on disk never loads JAX.
"""

import pathlib
import time

from rfp import files, rows as rows_lib, sample_folder, temporal
from rfp.errors import InputError

# Shard size when evaluation samples its own rows.
EVAL_SHARD_ROWS = 1 << 20


def _manifest_or_none(folder):
  try:
    return sample_folder.read_manifest(folder)
  except InputError:
    return None


def _current_generator(manifest, tracks):
  return not tracks or manifest.get('tracks', {}).get('generator') == temporal.GENERATOR


def find(workdir, needed, minimum, seed, tracks=False):
  """(folder, shards or None, manifest or None) for an evaluation's synthetic rows
  (synthetic tracks if `tracks`, in WORKDIR/samples-tracks).

  A complete folder of the run's best checkpoint with at least `minimum` rows
  is opened (e.g. one written by `sample.py`; repeats then share rows where it
  holds fewer than `needed`; track folders of an older track generator are
  passed over); otherwise shards are None and folder is where to
  sample `needed` rows (resuming it if it was cut off).
  """
  workdir = pathlib.Path(workdir)
  step = files.checkpoint_step(workdir, 'best')
  default = workdir / ('samples-tracks' if tracks else 'samples')
  for folder in [default] + sorted(workdir.glob(f'{default.name}-*')):
    manifest = _manifest_or_none(folder)
    if (manifest and manifest.get('n', 0) >= minimum and ('tracks' in manifest) == tracks
        and manifest.get('checkpoint', {}).get('step') == step
        and _current_generator(manifest, tracks)):
      try:
        return folder, sample_folder.open_samples(folder, manifest), manifest
      except InputError:  # Cut off: resumed by the caller if it is the right size.
        pass
  manifest = _manifest_or_none(default)
  if manifest is None or ((manifest.get('n'), manifest.get('seed'),
                           manifest.get('checkpoint', {}).get('step')) == (needed, seed, step)
                          and _current_generator(manifest, tracks)):
    return default, None, None
  # The track generator's version in the name: a folder of an older one is left as it is.
  version = '-' + temporal.GENERATOR.replace('/', '.') if tracks else ''
  return workdir / f'{default.name}-{step}-{needed}-{seed}{version}', None, None


def open_folder(folder, manifest=None, shards=None):
  """A sample folder as (one row source streaming from its shards, their track
  bounds or None for i.i.d. rows, its manifest); `manifest` and `shards` (as
  `sample_folder` reads them) save reading them again."""
  manifest = sample_folder.read_manifest(folder) if manifest is None else manifest
  shards = sample_folder.open_samples(folder, manifest) if shards is None else shards
  rows = rows_lib.Stack([sample_folder.shard_rows(a) for a in shards])
  bounds = sample_folder.read_bounds(folder, manifest) if 'tracks' in manifest else None
  return rows, bounds, manifest


def find_or_sample(folder, sample_cfg, workdir, dim, needed, minimum, seed, progress=True,
                   check=True):
  """An evaluation's synthetic rows as one row source, sampling them first if need be.

  `folder` names a folder of shards (`eval.synthetic`); otherwise `needed` rows come
  from the run's best checkpoint with the settings of `sample_cfg` (a
  `sample` config section: `sample.tracks` samples tracks), sampled into
  WORKDIR/samples unless a complete folder of at least `minimum` rows is
  already there. Unless not `check`, rows are checked for NaN/Inf: in one
  pass first, or where the folder's sampler checked them as it wrote them
  (`checked_finite` in its manifest) as the evaluation reads them. Returns
  (rows, their track bounds or None for i.i.d. rows, info dict).
  """
  sampled_now, seconds, t0 = False, {}, time.perf_counter()
  if folder:
    folder, shards, manifest = pathlib.Path(folder), None, None
    if not folder.is_dir():
      raise InputError(f'{folder}: synthetic shard folder (eval.synthetic) not found')
  else:
    folder, shards, manifest = find(workdir, needed, minimum, seed, bool(sample_cfg.tracks))
    if shards is None:
      # JAX loads only when rows must be sampled: an evaluation of rows on disk never starts it.
      from rfp import sampling  # pylint: disable=g-import-not-at-top
      sample_cfg = sample_cfg.copy_and_resolve_references()
      sample_cfg.n, sample_cfg.seed = needed, seed
      sample_cfg.shards = -(-needed // EVAL_SHARD_ROWS)
      sampling.write_samples(workdir, folder, sample_cfg, progress=progress)
      sampled_now, seconds['sample'] = True, time.perf_counter() - t0
  # `find` gives no manifest where it gives no shards: the folder is read now.
  rows, bounds, manifest = open_folder(folder, manifest, shards)
  if rows.dim != dim:
    raise InputError(f'{folder}: synthetic rows have dimension {rows.dim}, the references {dim}')
  if check and manifest.get('checked_finite'):
    # Checked as they were written; still checked as the evaluation reads them
    # (a file changed since stops it in one line), at no cost of its own.
    rows = rows_lib.Stack([rows_lib.Checked(part, part.path) for part in rows.parts])
  elif check:
    t1 = time.perf_counter()
    rows_lib.check_files_finite(rows.parts, progress)
    seconds['check'] = time.perf_counter() - t1
  return rows, bounds, {'folder': str(folder), 'rows': rows.n, 'sampled_now': sampled_now,
                        'seconds': seconds,
                        'tracks': bounds is not None,
                        **{k: manifest.get(k) for k in ('seed', 'solver', 'steps', 'dtype',
                                                        'sphere', 'temperature', 'checkpoint')}}
