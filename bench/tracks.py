"""Synthetic tracks against real ones: temporal statistics and sequence hardness.

From a trained run, samples synthetic tracks (`sample.tracks`) and i.i.d.
rows of the same size, then compares them with real tracks:

  * temporal statistics (`rfp.temporal`): lag-similarity curves (mean and
    q10-q90 over tracks), repetition (each window's best match 4+ s away:
    the distribution of its cosine and of its distance), lengths; of the
    training tracks, the training tracks as the synthetic ones drew them
    (each as often as copied: the paired reference, free of which tracks the
    draw happened to pick), the real pool's tracks, the synthetic tracks and
    i.i.d. rows cut like them;
  * sequence hardness with no queries: the real pool's tracks are split into
    probe tracks, a real set A and a second real set B (the floor). Probes are
    runs of L consecutive windows of the probe tracks; for each set X of
    distractor tracks, each probe's best start over X
    (`sequences.exact_best_starts`) is compared with its best start
    over A. The share of probes where X wins is ~50% for B (exchangeable with
    A); synthetic tracks as hard as real ones land there too, while i.i.d.
    rows, which cannot form a matching run, fall far below as L grows. The
    mean best score per L is the run-score decay: how fast a set's best run
    weakens as the probe grows.

Writes OUT/tracks.json and OUT/tracks.png.

  python bench/tracks.py --workdir runs/demo --out docs/img
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-position
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from rfp import bounds as bounds_lib, cli, data, files, generator, rows as rows_lib, sample_folder, sampling, temporal, tracks  # pylint: disable=wrong-import-position
from rfp.evaluation import sequences  # pylint: disable=wrong-import-position

LENGTHS = (1, 3, 5, 9, 19)


def real_tracks(path, ids_path):
  """(rows, bounds, description): a track-ordered file and its track ids."""
  rows = data.open_embeddings(path)
  ids = np.load(ids_path)
  return rows, bounds_lib.bounds_from_ids(ids), str(ids_path)


def subset_tracks(rows, bounds, tracks_idx):
  """The rows of some tracks (in order) as one array, with their bounds."""
  parts = [rows.read(int(bounds[t]), int(bounds[t + 1])) for t in tracks_idx]
  sizes = [len(p) for p in parts]
  return (rows_lib.ArrayRows(np.concatenate(parts)),
          np.cumsum([0] + sizes).astype(np.int64))


def sample(workdir, out, n, seed, tracks_on):
  sample_cfg = cli.run_config(files.read_config(workdir)).sample
  sample_cfg.n, sample_cfg.shards, sample_cfg.seed = n, 1, seed
  sample_cfg.tracks = tracks_on
  sampling.write_samples(workdir, out, sample_cfg, progress=False)
  shards = sample_folder.open_samples(out)
  x = rows_lib.ArrayRows(np.concatenate(shards).astype(np.float32))
  return x, (sample_folder.read_bounds(out) if tracks_on else None)


def probes(rows, bounds, length, count, rng):
  """`[count, length, dim]` runs of consecutive windows inside single tracks."""
  lengths = np.diff(bounds)
  ok = np.flatnonzero(lengths >= length)
  track = rng.choice(ok, count, p=lengths[ok] / lengths[ok].sum())
  start = bounds[track] + (rng.random(count) * (lengths[track] - length + 1)).astype(np.int64)
  return rows.take((start[:, None] + np.arange(length)).ravel()).reshape(count, length, -1)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='runs/demo')
  parser.add_argument('--out', default='docs/img')
  parser.add_argument('--pool', default='data/distractors.npy')
  parser.add_argument('--pool-tracks', default='data/distractors_tracks.npy')
  parser.add_argument('--probe-tracks', type=int, default=29,
                      help='pool tracks whose windows are the probes; the rest split in A and B')
  parser.add_argument('--probes', type=int, default=1000)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  workdir, out = pathlib.Path(args.workdir), pathlib.Path(args.out)
  rng = np.random.default_rng(args.seed)

  fit = tracks.ensure_fit(
      generator.load_sampler(workdir, cli.run_config(files.read_config(workdir)).sample),
      progress=True)
  run_config = cli.run_config(files.read_config(workdir))
  train_bounds, train_source = tracks.training_tracks(run_config)
  train_rows = data.open_embeddings(run_config.data.train)
  pool, pool_bounds, pool_source = real_tracks(args.pool, args.pool_tracks)

  order = rng.permutation(len(pool_bounds) - 1)
  probe_idx = np.sort(order[:args.probe_tracks])
  rest = order[args.probe_tracks:]
  a_idx, b_idx = np.sort(rest[0::2]), np.sort(rest[1::2])
  probe_rows, probe_bounds = subset_tracks(pool, pool_bounds, probe_idx)
  a_rows, a_bounds = subset_tracks(pool, pool_bounds, a_idx)
  b_rows, b_bounds = subset_tracks(pool, pool_bounds, b_idx)
  n = a_rows.n
  syn_rows, syn_bounds = sample(workdir, workdir / f'bench-tracks-{n}', n, args.seed, True)
  iid_rows, _ = sample(workdir, workdir / f'bench-rows-{n}', n, args.seed, False)
  manifest = sample_folder.read_manifest(workdir / f'bench-tracks-{n}')
  _, sections = tracks.shard_layout(manifest['tracks'], args.seed, 0, n)
  drawn = tracks.fit_tracks(len(train_bounds) - 1)[sections.mirror_t]

  stats = {'training tracks': temporal.summary(train_rows, train_bounds),
           'training tracks as drawn': temporal.summary(train_rows, train_bounds, tracks=drawn),
           'pool tracks': temporal.summary(pool, pool_bounds),
           'synthetic tracks': temporal.summary(syn_rows, syn_bounds),
           'i.i.d. synthetic rows': temporal.summary(iid_rows, syn_bounds)}

  # Sequence hardness against set A, per probe length.
  hardness = {}
  for length in LENGTHS:
    q = probes(probe_rows, probe_bounds, length, args.probes, rng)
    best_a = sequences.exact_best_starts(q, a_rows, a_bounds, [length])[length][0]
    row = {}
    for name, (x, b) in {'second real set (B)': (b_rows, b_bounds),
                         'synthetic tracks': (syn_rows, syn_bounds),
                         'i.i.d. synthetic rows': (iid_rows, np.array([0, n], np.int64))}.items():
      best = sequences.exact_best_starts(q, x, b, [length])[length][0]
      row[name] = {'share_beating_A': float(np.mean(best > best_a)),
                   'mean_best': float(np.mean(best))}
    row['real set A'] = {'mean_best': float(np.mean(best_a))}
    hardness[str(length)] = row
    print(f'L={length:2d}  ' + '  '.join(
        f'{k}: {v.get("share_beating_A", float("nan")):.3f} ({v["mean_best"]:.3f})'
        for k, v in row.items()), flush=True)

  result = {'workdir': str(workdir), 'rows_per_set': n, 'probes': args.probes,
            'sets': {'probe tracks': len(probe_idx), 'A tracks': len(a_idx),
                     'B tracks': len(b_idx), 'B rows': b_rows.n},
            'sources': {'training': train_source, 'pool': pool_source},
            'real_track_ids': {'training': train_source, 'pool': pool_source,
                               'probe': probe_idx.tolist(), 'A': a_idx.tolist(),
                               'B': b_idx.tolist(), 'drawn': drawn.tolist()},
            'fit': {'weights': [p['weights'] for p in fit['profiles']],
                    'rates': fit['rates'], 'sampler': fit['sampler'],
                    'generator': fit['generator'], 'jitter': fit['jitter'],
                    'strong': fit['strong']},
            'temporal': stats, 'sequence_hardness': hardness}
  out.mkdir(parents=True, exist_ok=True)
  files.write_json(out / 'tracks.json', result)
  plot(result, out / 'tracks.png')
  print(json.dumps({k: {'lag similarity': v['lag_similarity']['mean'],
                        'repetition': v['repetition']['quantiles'],
                        'match distance': v['repetition']['lag_quantiles']}
                    for k, v in stats.items()}, indent=1))


def plot(result, path):
  fig, axes = plt.subplots(1, 5, figsize=(25, 4.2))
  ax_lag, ax_rep, ax_dist, ax_hard, ax_decay = axes
  colours = {'training tracks': 'C0', 'training tracks as drawn': 'C4', 'pool tracks': 'C2',
             'synthetic tracks': 'C1', 'i.i.d. synthetic rows': 'C3'}
  for name, s in result['temporal'].items():
    lag = s['lag_similarity']
    ax_lag.plot(lag['lags'], lag['mean'], 'o-', color=colours[name], label=name)
    ax_lag.fill_between(lag['lags'], lag['q10'], lag['q90'], color=colours[name], alpha=0.15)
    for ax, key in ((ax_rep, 'quantiles'), (ax_dist, 'lag_quantiles')):
      rep = s['repetition'][key]
      qs = sorted(rep, key=float)
      ax.plot([rep[q] for q in qs], [float(q) for q in qs], 'o-', color=colours[name], label=name)
  ax_lag.set(xscale='log', xlabel='lag (windows of 0.5 s)', ylabel='cosine similarity',
             title='Lag similarity (mean; band: q10-q90 over tracks)')
  ax_lag.set_xticks(temporal.LAGS, [str(l) for l in temporal.LAGS])
  ax_lag.legend(fontsize=8)
  ax_rep.set(xlabel=f'best cosine at lag >= {temporal.MIN_LAG} in the same track',
             ylabel='quantile over windows', title='Repetition: how close')
  ax_dist.set(xscale='log', xlabel='distance of that match (windows)',
              ylabel='quantile over windows',
              title='Repetition: how far back')
  lengths = [int(l) for l in result['sequence_hardness']]
  for name, colour in [('real set A', 'C0'), ('second real set (B)', 'C2'),
                       ('synthetic tracks', 'C1'), ('i.i.d. synthetic rows', 'C3')]:
    row = [result['sequence_hardness'][str(l)][name] for l in lengths]
    if name != 'real set A':
      ax_hard.plot(lengths, [100 * r['share_beating_A'] for r in row], 'o-', color=colour,
                   label=name)
    ax_decay.plot(lengths, [r['mean_best'] for r in row], 'o-', color=colour, label=name)
  ax_hard.set(xlabel='probe length L (segments)',
              ylabel='% probes whose best start beats real set A',
              title=f'Sequence hardness ({result["rows_per_set"]:,} rows per set)', ylim=(0, 100))
  ax_hard.legend(fontsize=8)
  ax_decay.set(xlabel='probe length L (segments)', ylabel='mean best run score',
               title='Run-score decay with L')
  ax_decay.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


if __name__ == '__main__':
  main()
