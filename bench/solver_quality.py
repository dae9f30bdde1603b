"""Sample quality against cost: FD to held-out real rows per solver and budget.

For each solver (euler, heun, midpoint) and number of network evaluations
(NFE; heun and midpoint spend two per step), samples rows from a trained run
and computes the Fréchet distance to the run's held-out validation rows (the
rows train.py never trained on). Every cell starts from the same noise. The
first line is the floor: FD between as many real training rows and the same
held-out rows. Prints one table; paste it into bench/RESULTS.md.

  python bench/solver_quality.py                      # runs/demo
  python bench/solver_quality.py --workdir runs/nafp --nfe 2,4,8,16,32,64
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from rfp import checkpoint, cli, data, flow, metrics, model as model_lib, sampling, sharding  # pylint: disable=wrong-import-position
from rfp.errors import InputError  # pylint: disable=wrong-import-position


def held_out_rows(config, count):
  """(held-out rows, as many training rows): the run's own validation split."""
  emb = data.open_embeddings(config.data.train, dim=config.model.dim)
  val = data.split_rows(emb.n, config.data.val_fraction, config.data.val_max, config.train.seed)
  count = min(count, len(val), emb.n - len(val))
  train = np.setdiff1d(np.arange(emb.n), val)
  rng = np.random.default_rng(0)
  return (emb.take(rng.choice(val, count, replace=False)),
          emb.take(rng.choice(train, count, replace=False)))


@cli.main
def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='runs/demo', help='trained run (default: runs/demo)')
  parser.add_argument('--checkpoint', default='best', choices=('best', 'latest'))
  parser.add_argument('--nfe', default='4,8,16,32', help='network evaluations per sample')
  parser.add_argument('--solvers', default=','.join(flow.SOLVERS))
  parser.add_argument('--samples', type=int, default=None,
                      help="rows per cell (default: the run's train.val_samples; at most the "
                      'held-out rows)')
  parser.add_argument('--batch-size', type=int, default=None,
                      help="default: the run's config.sample.batch_size")
  parser.add_argument('--matmul-dtype', default=None, choices=('float32', 'bfloat16'))
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  solvers = args.solvers.split(',')
  unknown = set(solvers) - set(flow.SOLVERS)
  if unknown:
    raise InputError(f'--solvers: unknown {", ".join(sorted(unknown))}; expected {flow.SOLVERS}')
  nfes = [int(k) for k in args.nfe.split(',')]

  config, params, stats, _ = checkpoint.load_run(args.workdir, args.checkpoint)
  model_cfg = config.model.copy_and_resolve_references()
  model_cfg.dtype = args.matmul_dtype or model_cfg.dtype
  model = model_lib.from_config(model_cfg)
  mesh = sharding.data_mesh()
  params = sharding.put_replicated(params, mesh)
  batch = sharding.round_up(args.batch_size or config.sample.batch_size, mesh)
  real, train_rows = held_out_rows(config, args.samples or config.train.val_samples)
  real_moments = metrics.moments(real)
  fd = lambda x: metrics.frechet_distance_from_moments(*metrics.moments(x), *real_moments)

  print(f'# {args.workdir} ({args.checkpoint}), {model_cfg.width}x{model_cfg.depth} '
        f'{model_cfg.dtype}, {len(real)} samples vs {len(real)} held-out rows, '
        f'{jax.device_count()} x {jax.devices()[0].device_kind}')
  print(f'# floor: FD(real training rows, held-out rows) = {fd(train_rows):.3e}')
  print('| NFE | ' + ' | '.join(solvers) + ' |')
  print('|---' * (1 + len(solvers)) + '|')
  for nfe in nfes:
    cells = []
    for solver in solvers:
      steps, rest = divmod(nfe, flow.evaluations_per_step(solver))
      if rest or not steps:
        cells.append('n/a')
        continue
      generate = sampling.make_generator(model, steps, solver, mesh, stats=stats)
      x = sampling.generate_rows(generate, params, args.seed, 0, len(real), model.dim, batch, mesh)
      cells.append(f'{fd(x):.3e}')
    print(f'| {nfe} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
  sys.exit(main())
