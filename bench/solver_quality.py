"""Sample quality against cost: FD to held-out real rows per solver and budget.

For each solver (euler, heun, midpoint) and number of network evaluations
(NFE; heun and midpoint spend two per step), samples rows from a trained run
and computes the Fréchet distance to the run's held-out validation rows (the
rows train.py never trained on). Every cell starts from the same noise. The
first line is the floor: FD between as many real training rows and the same
held-out rows. Prints one table; paste it into bench/RESULTS.md.

With --distilled, a second table sets the run's own sampler (its config's
solver and steps at its calibrated temperature, as sample.py runs it) beside
distilled runs of it (rfp/distill.py), each with its own settings: rows/s of
the whole sampler (noise, network, de-normalisation, sphere, float16 rows on
the host; compiled first, best of 3 turns in this run, so the ratios
compare), FD to the held-out rows, and hardness (share of the evaluation
queries whose best distractor outscores their true match, exact search) at
1,000, 10,000, 30,000 and the real pool's size (and `--beyond` sizes past it),
on one set of rows per sampler (the same noise for all), beside the first rows
of the real pool; then each distilled run's hardness minus the run's own, and
the model's size: its matmul FLOPs per row.

  python bench/solver_quality.py                      # runs/demo
  python bench/solver_quality.py --workdir runs/nafp --nfe 2,4,8,16,32,64
  python bench/solver_quality.py --nfe '' --distilled runs/demo-distilled
  python bench/solver_quality.py --nfe '' --distilled runs/a,runs/b --beyond 300000,1000000
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import time  # pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from rfp import (calibration, checkpoint, cli, data, files, flow, metrics,  # pylint: disable=wrong-import-position
                 generator, model as model_lib, noise as noise_lib, sampling,
                 sharding)
from rfp.errors import InputError  # pylint: disable=wrong-import-position
from rfp.evaluation import hardness, inputs as inputs_lib  # pylint: disable=wrong-import-position

HARDNESS_SIZES = (1_000, 10_000, 30_000)  # Then the real pool's size.


def held_out_rows(config, count):
  """(held-out rows, as many training rows): the run's own validation split."""
  emb = data.open_embeddings(config.data.train, dim=config.model.dim)
  val = data.split_rows(emb.n, config.data.val_fraction, config.data.val_max, config.train.seed,
                        config.data.val_block_rows)
  count = min(count, len(val), emb.n - len(val))
  train = np.setdiff1d(np.arange(emb.n), val)
  rng = np.random.default_rng(0)
  return (emb.take(rng.choice(val, count, replace=False)),
          emb.take(rng.choice(train, count, replace=False)))


def own_sampler(workdir, seed, batch_size, mesh):
  """(rows(start, n), NFE, the run's model config) for a run's own sampler: its solver, steps and
  calibrated temperature, float16 rows in the embedding space as sample.py
  writes them; `rows` keeps `sampling.LOOKAHEAD` batches in flight as sample.py does."""
  config, params, stats, meta = checkpoint.load_run(workdir)
  sample = cli.run_config(files.read_config(workdir)).sample
  model = model_lib.from_config(config.model)
  generate = generator.make_generator(
      model, sample.steps, sample.solver, mesh, stats=stats,
      sphere=generator.resolve_sphere(sample.sphere, files.read_summary(workdir)),
      out_dtype=np.float16, temperature=calibration.temperature(sample, workdir, meta['step']))
  batch = sharding.round_up(batch_size or sample.batch_size, mesh)
  noise = noise_lib.make_noise(model.dim, batch, mesh)
  params = sharding.put_replicated(params, mesh)
  seed = np.uint32(seed)

  def rows(start, n):
    calls = (generate(params, noise(seed, np.int32(0), np.int32(s)))
             for s in range(start, start + n, batch))
    out = [np.asarray(x) for x in sampling.lookahead(calls, sampling.LOOKAHEAD)]
    return np.concatenate(out)[:n]

  rows(0, batch)  # Compiles.
  return rows, sample.steps * flow.evaluations_per_step(sample.solver), config.model


def rates(samplers, n, rounds=3):
  """Rows/s of each sampler: best of `rounds` passes of `n` rows, taking turns,
  so that a shared machine's load falls on all of them alike."""
  best = [0.0] * len(samplers)
  for _ in range(rounds):
    for i, rows in enumerate(samplers):
      start = time.perf_counter()
      rows(0, n)
      best[i] = max(best[i], n / (time.perf_counter() - start))
  return best


def hardness_curve(the_inputs, rows_nd, sizes):
  """{N: hardness of the first N rows} (exact search), for each N in `sizes`."""
  best, done, curve = hardness.BestScores(the_inputs.queries_qd), 0, {}
  for n in sorted(sizes):
    best.update(np.asarray(rows_nd[done:n], np.float32))
    done = n
    curve[n] = float(np.mean(best.best > the_inputs.true_scores))
  return curve


def distilled_table(teacher, students, fd, the_inputs, seed, batch_size, timed_rows, mesh,
                    beyond=()):
  """Prints the run's own sampler beside its distilled runs (see the docstring)."""
  pool = the_inputs.real.n
  sizes = [s for s in HARDNESS_SIZES if s < pool] + [pool] + sorted(s for s in beyond if s > pool)
  runs = [teacher] + students
  samplers = [own_sampler(w, seed, batch_size, mesh) for w in runs]
  rate = rates([rows for rows, _, _ in samplers], timed_rows)
  print(f'# hardness: {len(the_inputs.queries_qd)} queries, exact search, {pool:,} rows per '
        f'sampler; rows/s: best of 3 turns of {timed_rows:,} rows, '
        f'{jax.device_count()} x {jax.devices()[0].device_kind}')
  print('| sampler | model | NFE | rows/s | speed-up | FD | ' +
        ' | '.join(f'hardness % at {s:,}' for s in sizes) + ' |')
  print('|---' * (6 + len(sizes)) + '|')
  real = hardness_curve(the_inputs, the_inputs.real.read(0, pool),
                        [s for s in sizes if s <= pool])
  print('| real pool | – | – | – | – | – | ' +
        ' | '.join(f'{100 * real[s]:.2f}' if s in real else '–' for s in sizes) + ' |')
  curves = []
  for workdir, (rows_fn, nfe, m), r in zip(runs, samplers, rate):
    rows = rows_fn(0, sizes[-1])
    curves.append(hardness_curve(the_inputs, rows, sizes))
    print(f'| {workdir} | {m.width}x{m.depth}x{m.hidden} | {nfe} | {r:,.0f} | '
          f'{r / rate[0]:.1f}x | {fd(rows.astype(np.float32)):.3e} | ' +
          ' | '.join(f'{100 * curves[-1][s]:.2f}' for s in sizes) + ' |', flush=True)
  print(f'\n| minus {teacher} (points) | MFLOP per row | ' +
        ' | '.join(f'at {s:,}' for s in sizes) + ' |')
  print('|---' * (2 + len(sizes)) + '|')
  for workdir, curve, (_, _, m) in zip(students, curves[1:], samplers[1:]):
    print(f'| {workdir} | {model_lib.flops_per_row(m) / 1e6:.2f} | ' +
          ' | '.join(f'{100 * (curve[s] - curves[0][s]):+.2f}' for s in sizes) + ' |')


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
  parser.add_argument('--distilled', default='',
                      help='comma-separated distilled runs of --workdir: a second table')
  parser.add_argument('--beyond', default='',
                      help='comma-separated sizes past the real pool for the second table '
                      '(rows sampled by every run, the teacher included)')
  parser.add_argument('--timed-rows', type=int, default=32_768,
                      help='rows per timed pass of each sampler in the second table')
  args = parser.parse_args()
  solvers = args.solvers.split(',')
  unknown = set(solvers) - set(flow.SOLVERS)
  if unknown:
    raise InputError(f'--solvers: unknown {", ".join(sorted(unknown))}; expected {flow.SOLVERS}')
  nfes = [int(k) for k in args.nfe.split(',') if k]

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
      generate = generator.make_generator(model, steps, solver, mesh, stats=stats)
      x = generator.generate_rows(generate, params, args.seed, 0, len(real), model.dim, batch, mesh)
      cells.append(f'{fd(x):.3e}')
    print(f'| {nfe} | ' + ' | '.join(cells) + ' |', flush=True)
  if args.distilled:
    fd_of = lambda x: fd(x[:len(real)])
    the_inputs = inputs_lib.open_inputs(cli.run_config(files.read_config(args.workdir)).eval,
                                        files.read_config(args.workdir))
    students = [pathlib.Path(p) for p in args.distilled.split(',')]
    distilled_table(pathlib.Path(args.workdir), students, fd_of, the_inputs, args.seed,
                    args.batch_size, args.timed_rows, mesh,
                    beyond=[int(s) for s in args.beyond.split(',') if s])


if __name__ == '__main__':
  sys.exit(main())
