"""Builds the project's default data (data/*.npy) from real music in Debian packages.

  python build_data.py
  python build_data.py --retrain-fingerprinter --config.build.fp_steps=1500
  python build_data.py --layout nmfp          # data/ rewritten as NMFP's files, in nmfp/

Stages (each skipped when its output exists, so a re-run resumes):
  1. catalog        apt-get download + dpkg-deb -x the packages, decode tracks to
                    8 kHz mono (ffmpeg), list music and background-noise files
  2. split          de-duplicate tracks; assign whole tracks to disjoint splits
  3. fingerprinter  train the NAFP-style encoder (reuses the shipped weights in
                    rfp/audio/weights/ unless --retrain-fingerprinter)
  4. export         embed every split, make distorted queries, score HR@1, write
                    data/ and data/metadata.json
"""

import sys

from rfp import cli

_EPILOG = """\
Settings are the config's build section: configs/data.py says what each field
sets (split sizes, packages, seed, fingerprinter settings)."""


@cli.main
def main(argv=None):
  parser = cli.make_parser(__doc__, 'configs/data.py', epilog=_EPILOG)
  parser.add_argument('--work', default=None,
                      help='downloads, decoded audio, checkpoints; several GB (build.work_dir; default work)')
  parser.add_argument('--out', default=None, help='output folder (build.out_dir; default data)')
  parser.add_argument('--retrain-fingerprinter', action='store_true',
                      help='train instead of using the shipped weights (build.retrain_fingerprinter); '
                           'the new weights go to build.weights_dir (default WORK/weights)')
  parser.add_argument('--replace-shipped-weights', action='store_true',
                      help='a retrain writes over rfp/audio/weights/ instead (build.replace_shipped_weights)')
  parser.add_argument('--layout', choices=('nafp', 'nmfp'), default=None,
                      help="write the built data (build.out_dir) in a system's own files into "
                           'LAYOUT/ (or --layout-out): NAFP/GraFPrint/PeakNetFP db.mm, query.mm, '
                           "dummy_db.mm; NMFP's database.mm + database.csv and query .npy files")
  parser.add_argument('--layout-out', default=None, metavar='DIR', help='where --layout writes')
  args, config = cli.parse(parser, argv)
  if args.layout:
    from rfp import layouts  # pylint: disable=g-import-not-at-top
    out = args.layout_out or args.layout
    layouts.write_layout(args.layout, args.out or config.build.out_dir, out)
    print(f'wrote {out}/ from {args.out or config.build.out_dir}/ in the {args.layout} layout')
    return 0
  for flag, key in (('work', 'work_dir'), ('out', 'out_dir')):  # Shorthands for config.build.*.
    if getattr(args, flag) is not None:
      config.build[key] = getattr(args, flag)
  for flag in ('retrain_fingerprinter', 'replace_shipped_weights'):
    if getattr(args, flag):
      config.build[flag] = True
  from rfp.audio import pipeline  # Imports JAX: after the arguments, so --help stays instant.
  pipeline.run(config.build, log=lambda m: print(m, flush=True))
  return 0


if __name__ == '__main__':
  sys.exit(main())
