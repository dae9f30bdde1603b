"""Evaluate a trained run: sample fidelity and retrieval scaling, real vs synthetic.

  python evaluate.py                                  # newest run under runs/, its own data
  python evaluate.py --workdir runs/nafp --nafp /data/nafp_test   # or --nmfp DIR
  python evaluate.py --config.eval.sizes='[10000,100000]' --config.eval.repeats=5
  python evaluate.py --index-dir DIR --index-step add --part 0 --parts 2   # docs/scale.md
"""

import os
import pathlib
import sys

# faiss-gpu shares the GPU with JAX (when sampling): don't let JAX take 75% of it.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

from rfp import cli, files, synthetic as synthetic_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from rfp.errors import InputError  # pylint: disable=g-import-not-at-top,wrong-import-position

_RUN_CONFIG = 'WORKDIR/config.json'
# results.json, report.md and two plots, with room to spare.
REPORT_BYTES = 50_000_000


@cli.main
def main(argv=None):
  parser = cli.make_parser(__doc__, _RUN_CONFIG, epilog=(
      'Writes OUT/results.json (every figure, the settings and the data paths), report.md\n'
      '(tables in the paper\'s Table 3 layout), scaling.png and embedding.png. Without\n'
      'eval.synthetic, the synthetic rows needed are sampled into WORKDIR/samples (reused\n'
      'on the next run). Each finished point of the sweep is kept in OUT/points: re-run\n'
      'the same command after an interruption and it carries on from there. Inputs are\n'
      'only ever read.'))
  parser.add_argument('--workdir', default=None,
                      help='run folder (default: the most recent run under runs/)')
  parser.add_argument('--out', default=None, metavar='DIR', help='output folder (default: WORKDIR/eval)')
  cli.add_layout_flags(parser)
  parser.add_argument('--index-dir', default=None, metavar='DIR',
                      help='the IVF-PQ index of the references and every row of eval.synthetic, '
                           'built in parts (docs/scale.md); the sweep searches it at that size')
  parser.add_argument('--index-step', choices=('train', 'add', 'merge'), default=None,
                      help='only build the --index-dir index: train it once, add this '
                           "process's part, or merge the parts on disk; then exit")
  parser.add_argument('--part', type=int, default=None,
                      help='this process for --index-step add (default: SLURM or JAX process)')
  parser.add_argument('--parts', type=int, default=None, help='processes adding parts')
  rest, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
  args = parser.parse_args(rest)
  overrides = cli.layout_overrides(args, sections=('eval',)) + overrides
  workdir = pathlib.Path(args.workdir) if args.workdir else files.latest_run('runs')
  run = files.read_config(workdir)
  config = cli.run_config(run, None if args.config == _RUN_CONFIG else args.config, overrides,
                          source=workdir / 'config.json')
  out = pathlib.Path(args.out) if args.out else workdir / 'eval'
  files.check_output(out, REPORT_BYTES, what='the report files')
  from rfp import report  # pylint: disable=g-import-not-at-top  (matplotlib, once args are valid)
  from rfp.evaluation import results  # pylint: disable=g-import-not-at-top  (faiss)
  plan = results.plan(config, run, progress=not args.quiet)
  dim, seed = plan.inputs.reference.dim, config.eval.seed
  if args.index_dir and not config.eval.synthetic:
    raise InputError('--index-dir indexes the rows of eval.synthetic: set it to a sample.py folder')
  synthetic, synthetic_bounds, info = synthetic_lib.find_or_sample(
      config.eval.synthetic, config.sample, workdir, dim, plan.synthetic_rows,
      plan.synthetic_minimum, seed, progress=not args.quiet,
      check=not args.index_step)  # Each index step reads only its own rows; the sweep checks all.
  merged = None
  if args.index_dir:
    from rfp import index_parts  # pylint: disable=g-import-not-at-top  (faiss)
    if args.index_step:
      done = index_parts.run_step(args.index_step, args.index_dir, plan.inputs.reference,
                                  synthetic.parts, plan.spec, seed, args.part, args.parts,
                                  progress=not args.quiet)
      print(f'index step {args.index_step}: wrote {done}')
      return 0
    merged = index_parts.open_merged(args.index_dir, plan.inputs.reference, synthetic.parts)
  synthetic_tracks = None  # (rows, bounds, info), as for the i.i.d. rows.
  if plan.track_rows:  # A few synthetic tracks for the multi-segment queries' curve.
    track_cfg = config.sample.copy_and_resolve_references()
    track_cfg.tracks = True
    synthetic_tracks = synthetic_lib.find_or_sample(
        None, track_cfg, workdir, dim, plan.track_rows, plan.track_rows, seed,
        progress=not args.quiet)
  figures, maps = results.evaluate_run(config, run, workdir, plan, synthetic, info,
                                       progress=not args.quiet, synthetic_bounds=synthetic_bounds,
                                       tracks=synthetic_tracks, merged=merged,
                                       points_dir=out / 'points')
  paths = report.write(out, figures, maps)
  for line in report.console(figures):
    print(line)
  print(f'wrote {paths["report"]} and {len(paths) - 1} more files in {out}')


if __name__ == '__main__':
  sys.exit(main())
