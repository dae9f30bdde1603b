"""Builds the project's default data (data/*.npy) from real music in Debian packages.

Stages (each skipped when its output exists, so a re-run resumes):
  1. catalog        apt-get download + dpkg-deb -x the packages, decode tracks to
                    8 kHz mono (ffmpeg), list music and background-noise files
  2. split          de-duplicate tracks; assign whole tracks to disjoint splits
  3. fingerprinter  train the NAFP-style encoder (reuses the shipped weights in
                    rfp/audio/weights/ unless --retrain-fingerprinter)
  4. export         embed every split, make distorted queries, score HR@1, write
                    data/ and data/metadata.json
"""

import argparse
import pathlib
import sys

from rfp import cli
from rfp.audio import corpus


@cli.main
def main(argv=None):
  parser = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--work-dir', default='work', type=pathlib.Path,
                      help='downloads, decoded audio, checkpoints (default: %(default)s; several GB)')
  parser.add_argument('--out-dir', default='data', type=pathlib.Path, help='default: %(default)s')
  parser.add_argument('--seed', default=0, type=int, help='splits, training, queries (default: %(default)s)')
  parser.add_argument('--fp-steps', default=4500, type=int,
                      help='fingerprinter steps; 0 with --fp-init only refits the whitening of '
                           'the last layer (default: %(default)s)')
  parser.add_argument('--fp-batch', default=64, type=int,
                      help='clean/distorted pairs per step (default: %(default)s)')
  parser.add_argument('--fp-per-track', default=4, type=int,
                      help='anchors per track in a batch: half of them moments, half their next '
                           'window, so a batch holds in-track negatives (default: %(default)s)')
  parser.add_argument('--fp-lr', default=5e-4, type=float,
                      help='peak learning rate of the cosine schedule (default: %(default)s)')
  parser.add_argument('--fp-mine-every', default=0, type=int,
                      help='build each group from a moment and the moments of its track that the '
                           'encoder confuses it with, re-mined every this many steps; 0: random '
                           'moments. For fine-tuning (default: %(default)s)')
  parser.add_argument('--fp-loss', default='nt-xent', choices=('nt-xent', 'query-to-database'),
                      help='nt-xent: SimCLR, every segment against every other; query-to-database: '
                           'each distorted copy against the clean segments only, as retrieval '
                           'scores it. For fine-tuning (default: %(default)s)')
  parser.add_argument('--fp-init', type=pathlib.Path,
                      help='fine-tune from these weights (.npz) instead of random ones')
  parser.add_argument('--fp-widen', action='store_true',
                      help='every conv twice as wide (channels 32-512; ~3.6x the FLOPs, ~2x the '
                           'time per step on CPU): from scratch, or from the --fp-init weights '
                           'made twice as wide with the same function')
  parser.add_argument('--fp-minutes', default=150, type=int,
                      help='music of --music-packages reserved for fingerprinter training; music '
                           'left over once the other splits are full joins it (default: %(default)s)')
  parser.add_argument('--reference-rows', default=12000, type=int, help='default: %(default)s')
  parser.add_argument('--flow-rows', default=55000, type=int, help='default: %(default)s')
  parser.add_argument('--distractor-rows', default=75000, type=int,
                      help='at most this many (the music runs out first); default: %(default)s')
  parser.add_argument('--queries', default=2000, type=int, help='default: %(default)s')
  parser.add_argument('--music-packages', default=','.join(corpus.MUSIC_PACKAGES),
                      help='comma-separated Debian packages to take music from (default: %(default)s)')
  parser.add_argument('--fp-packages',
                      help='comma-separated packages whose music only trains the fingerprinter, on '
                           'top of --fp-minutes; empty for none. Fetched only to train: the shipped '
                           "weights record their own training music (default with "
                           f"--retrain-fingerprinter: {','.join(corpus.FINGERPRINTER_PACKAGES)})")
  parser.add_argument('--noise-packages', default=','.join(corpus.NOISE_PACKAGES),
                      help='comma-separated packages with background noise (default: %(default)s)')
  parser.add_argument('--retrain-fingerprinter', action='store_true',
                      help='train instead of using the shipped weights (resumes from the run with the same '
                           'settings under WORK_DIR/fingerprinter/; delete it to start over)')
  args = parser.parse_args(argv)
  if args.fp_per_track < 2 or args.fp_per_track % 2 or args.fp_batch % args.fp_per_track:
    parser.error(f'--fp-per-track {args.fp_per_track}: must be even and divide --fp-batch {args.fp_batch}')
  if args.fp_mine_every < 0:
    parser.error(f'--fp-mine-every {args.fp_mine_every}: must be 0 (off) or a number of steps')
  if args.fp_init and not args.fp_init.is_file():
    parser.error(f'--fp-init {args.fp_init}: no such file')
  log = lambda m: print(m, flush=True)
  from rfp.audio import build  # Imports JAX: after argparse, so --help stays instant.
  args.work_dir.mkdir(parents=True, exist_ok=True)
  packages = lambda arg: [p for p in arg.split(',') if p]
  if args.fp_packages is None:
    args.fp_packages = ','.join(corpus.FINGERPRINTER_PACKAGES) if args.retrain_fingerprinter else ''
  cat = build.catalog(args.work_dir, packages(args.music_packages), packages(args.noise_packages),
                      packages(args.fp_packages), log=log)
  splits = build.split(args.work_dir, cat, args.seed, args.fp_minutes * 60, args.reference_rows,
                       args.flow_rows, args.distractor_rows, log=log)
  params, fp_info = build.train_fingerprinter(
      args.work_dir, splits, args.seed, args.fp_steps, args.fp_batch, args.fp_per_track,
      args.fp_lr, args.fp_init, args.retrain_fingerprinter, args.fp_mine_every, args.fp_widen,
      args.fp_loss, cat['licenses'], log=log)
  if (args.out_dir / 'metadata.json').exists():
    log(f'export: {args.out_dir}/metadata.json exists; delete it to rebuild {args.out_dir}/')
    return 0
  meta = build.export(args.work_dir, args.out_dir, params, splits, cat, fp_info, args.seed,
                      args.queries, log=log)
  r = meta['retrieval']
  log(f'done: HR@1 {100 * r["hr1_reference_only"]:.1f}% against the reference set alone; '
      + ', '.join(f'{100 * d["hr1_mean"]:.1f}% with {d["n_distractors"]} distractors'
                  for d in r['with_distractors']))
  return 0


if __name__ == '__main__':
  sys.exit(main())
