"""Train a rectified-flow model on a fingerprinter's embeddings.

  python train.py --config configs/peaknetfp.py --config.data.train=PATH
"""

import pathlib
import sys

from rfp import cli, data


@cli.main
def main(argv=None):
  parser = cli.make_parser(__doc__, 'configs/demo.py', epilog=(
      'Writes WORKDIR/config.json, stats.json, ckpt/{latest,best}/ (orbax) and\n'
      'metrics.jsonl. Running the same command again resumes from the latest checkpoint;\n'
      'Ctrl-C saves one before stopping. A larger --config.train.epochs continues a run\n'
      '(its learning-rate schedule then ends later). model.dim unset: read from the data.\n'
      '--config.train.distill_from=RUN distils RUN\'s best checkpoint into a sampler of\n'
      'train.distill_steps network evaluations instead (rfp/distill.py, docs/sampling.md).'))
  parser.add_argument('--workdir', default=None,
                      help='run folder (default: runs/<config name>)')
  parser.add_argument('--stop-after', type=int, default=None, metavar='STEPS',
                      help='stop at this global step with a checkpoint (resume later)')
  cli.add_layout_flags(parser)
  args, config = cli.parse(parser, argv)
  # Before any work: a track file of another file would stop the run after its last epoch.
  config.data.train_tracks = data.resolve_tracks(
      config.data.train_tracks, config.data.train, 'data.train_tracks',
      'blocks of data.val_block_rows rows stand in for tracks')
  from rfp import distill, training  # Heavy imports only once the arguments are valid.
  workdir = pathlib.Path(args.workdir or pathlib.Path('runs') / config.name)
  run = distill.distill_and_evaluate if config.train.distill_from else training.train_and_evaluate
  result = run(config, workdir, stop_after=args.stop_after, progress=not args.quiet)
  if result.get('best_score') is not None:
    print(f'{workdir}: step {result["step"]}/{result["total_steps"]}, best checkpoint: epoch '
          f'{result["best_epoch"]} ({result["select"]} {result["best_score"]:.3e}), sampling '
          f'temperature {result["temperature"]}')


if __name__ == '__main__':
  sys.exit(main())
