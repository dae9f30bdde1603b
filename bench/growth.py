"""How hardness grows with the number of distractors: synthetic against real, exact.

The verdict of an evaluation (rfp/evaluation/results.py) reads two things at
the largest size N* where a second real set exists (the run's training rows):
the level, synthetic minus real hardness at N*, and the growth, the slope in
log N from N*/8 to N* over real's. This bench measures both with an exact
search (no index) for every kind of distractor set a run can offer, like with
like and not:

  real         whole tracks of the real pool (as a real database grows)
  real rows    random rows of the real pool
  second real  whole tracks of the run's training rows (the floor)
  synthetic    i.i.d. synthetic rows (WORKDIR/samples)
  tracks       whole synthetic tracks (WORKDIR/samples-tracks)

and the extreme-value estimate's back-test (rfp/evaluation/tail.py). Sets are
averaged over `--draws` draws (disjoint slices of the synthetic rows).

  python bench/growth.py --workdir runs/demo
  python bench/growth.py --workdir runs/families/positive/run --data runs/families/positive
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rfp import bounds as bounds_lib, data, rows as rows_lib, synthetic as synthetic_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from rfp.evaluation import hardness, scaling, tail  # pylint: disable=g-import-not-at-top,wrong-import-position


def _track_ids(folder, name, emb):
  """A family's rows keep the shipped data's tracks (bench/families.py)."""
  path = folder / name if (folder / name).exists() else ROOT / 'data' / name
  return bounds_lib.bounds_from_ids(data.track_ids(path, emb, 'growth bench'))


def measure(workdir, data_dir, draws, seed=0, queries=2_000, predict=()):
  """{kind: {N: hardness}}, the growth summary, the tail's back-test and its
  estimate from the whole pool at the sizes `predict`."""
  d = pathlib.Path(data_dir)
  ref = data.open_embeddings(d / 'reference.npy')
  # The queries evaluate.py takes (rfp/evaluation/inputs.py), for figures beside its own.
  rows = rows_lib.sample_rows(len(np.load(d / 'ground_truth.npy')), queries,
                              np.random.default_rng([seed, 0]))
  q_qd = np.load(d / 'queries.npy')[rows].astype(np.float32)
  gt = np.load(d / 'ground_truth.npy')[rows]
  true_q = np.einsum('qd,qd->q', q_qd, ref.take(gt))
  real = data.open_embeddings(d / 'distractors.npy')
  real_b = _track_ids(d, 'distractors_tracks.npy', real)
  real2 = data.open_embeddings(d / 'flow_train.npy')
  real2_b = _track_ids(d, 'flow_train_tracks.npy', real2)
  top = real2.n
  sizes = [top // 8, top // 4, top // 2, top]
  sets = {}

  def whole(source, bounds, kind):
    return lambda n, r: rows_lib.Subset(source, scaling.whole_tracks(
        bounds, n, np.random.default_rng([seed, kind, n, r]))[0])

  sets['real'] = whole(real, real_b, 1)
  sets['real rows'] = lambda n, r: rows_lib.Subset(real, rows_lib.sample_rows(
      real.n, n, np.random.default_rng([seed, 5, n, r])))
  sets['second real'] = lambda n, r: (real2 if n == real2.n else whole(real2, real2_b, 2)(n, r))
  workdir = pathlib.Path(workdir)
  synthetic, _, _ = synthetic_lib.open_folder(workdir / 'samples')
  sets['synthetic'] = lambda n, r: rows_lib.Slice(synthetic, r * n, (r + 1) * n)
  if (workdir / 'samples-tracks').is_dir():
    tracks, tracks_b, _ = synthetic_lib.open_folder(workdir / 'samples-tracks')
    sets['tracks'] = whole(tracks, tracks_b, 3)
  hard = {}
  for kind, make in sets.items():
    t0 = time.perf_counter()
    hard[kind] = {n: float(np.mean([hardness.exact_hardness(q_qd, true_q, make(n, r))
                                    for r in range(1 if kind == 'second real' and n == top
                                                   else draws)]))
                  for n in sizes}
    print(f'{kind:12s}' + ' '.join(f'{100 * h:6.2f}' for h in hard[kind].values())
          + f'   ({time.perf_counter() - t0:.0f} s)', flush=True)
  growth = {}
  for kind in hard:
    slope = lambda k: (hard[k][top] - hard[k][top // 8]) / np.log(8)
    growth[kind] = {'level': hard[kind][top] - hard['real'][top],
                    'growth': slope(kind) / slope('real')}
  backtest = tail.backtest(q_qd, true_q, real, real_b, {'synthetic': synthetic}, seed)
  estimate = tail.estimate(q_qd, true_q, real, real_b, predict, seed) if predict else None
  return {'sizes': sizes, 'hardness': hard, 'growth': growth, 'backtest': backtest,
          'estimate': estimate}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True, help='a trained run with WORKDIR/samples')
  parser.add_argument('--data', default=str(ROOT / 'data'), help='a folder laid out as data/')
  parser.add_argument('--draws', type=int, default=3)
  parser.add_argument('--queries', type=int, default=2_000, help='as eval.num_queries')
  parser.add_argument('--predict', default='1000000,10000000,100000000',
                      help='sizes at which to print the extreme-value estimate from the whole pool')
  parser.add_argument('--out', help='write the figures here as JSON')
  args = parser.parse_args()
  out = measure(args.workdir, args.data, args.draws, queries=args.queries,
                predict=[int(n) for n in args.predict.split(',') if n])
  n_lo, n_hi = out['sizes'][0], out['sizes'][-1]
  print(f'\nfrom {n_lo:,} to {n_hi:,}: level at {n_hi:,} (points vs real), growth (x real\'s)')
  for kind, g in out['growth'].items():
    print(f'  {kind:12s} {100 * g["level"]:+6.2f}   {g["growth"]:.2f}')
  bt = out['backtest']
  at = list(bt['errors']['extreme_value'])
  print('back-test, predicted minus real at ' + ', '.join(f'{n:,}' for n in at) + ':')
  for name, err in bt['errors'].items():
    print(f'  {name:14s} ' + '  '.join(f'{100 * e:+.2f}' for e in err.values()))
  if out['estimate']:
    print('extreme-value estimate from the whole pool, hardness % [90 %]:')
    for n, h in out['estimate']['hardness'].items():
      print(f'  {n:>12,}  {100 * h["mean"]:5.1f} [{100 * h["lo"]:.1f}, {100 * h["hi"]:.1f}]')
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(tail.json_keys(out), indent=1))


if __name__ == '__main__':
  main()
