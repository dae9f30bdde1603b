"""The build of data/: its stages in order, each writing one artefact under the
work dir and skipping itself when that exists, so a re-run resumes at the first
missing one.

  catalog (`catalog`) -> split (`splits`) -> fingerprinter (`training`) -> export (`export`)

Settings are configs/data.py's `build` section.
"""

import pathlib

from rfp.audio import catalog, export, fingerprinter, packages, splits, training
from rfp.errors import InputError


def check_config(build):
  """Refuses settings that would fail only after downloads or hours of training."""
  if build.fp_per_track < 2 or build.fp_per_track % 2 or build.fp_batch % build.fp_per_track:
    raise InputError(f'build.fp_per_track={build.fp_per_track}: must be even and divide '
                     f'build.fp_batch={build.fp_batch}')
  if build.fp_mine_every < 0:
    raise InputError(f'build.fp_mine_every={build.fp_mine_every}: must be 0 (off) or a number of steps')
  if build.fp_loss not in fingerprinter.LOSSES:
    raise InputError(f'build.fp_loss={build.fp_loss}: must be one of {", ".join(sorted(fingerprinter.LOSSES))}')
  if build.fp_init and not pathlib.Path(build.fp_init).is_file():
    raise InputError(f'build.fp_init={build.fp_init}: no such file')
  if build.replace_shipped_weights and not build.retrain_fingerprinter:
    raise InputError('build.replace_shipped_weights: only with --retrain-fingerprinter')


def _packages(text):
  return [p for p in text.split(',') if p]


def run(build, log=print):
  """Runs every stage of the `build` config section; returns metadata.json's
  contents, or None when the output folder already holds a build."""
  check_config(build)
  work, out_dir = pathlib.Path(build.work_dir), pathlib.Path(build.out_dir)
  work.mkdir(parents=True, exist_ok=True)
  fp_packages = build.fp_packages
  if fp_packages is None:
    fp_packages = ','.join(packages.FINGERPRINTER_PACKAGES) if build.retrain_fingerprinter else ''
  cat = catalog.catalog(work, _packages(build.music_packages), _packages(build.noise_packages),
                        _packages(fp_packages), log=log)
  plan = splits.SplitPlan(build.seed, build.fp_minutes * 60, build.reference_rows, build.flow_rows,
                          build.distractor_rows)
  parts = splits.split(work, cat, plan, log=log)
  weights = training.train_fingerprinter(work, parts, build, cat['licenses'], log=log)
  if (out_dir / 'metadata.json').exists():
    log(f'export: {out_dir}/metadata.json exists; delete it to rebuild {out_dir}/')
    return None
  meta = export.export(work, build, weights, parts, cat, log=log)
  r = meta['retrieval']
  log(f'done: HR@1 {100 * r["hr1_reference_only"]:.1f}% against the reference set alone; '
      + ', '.join(f'{100 * d["hr1_mean"]:.1f}% with {d["n_distractors"]} distractors'
                  for d in r['with_distractors']))
  return meta
