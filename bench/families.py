"""Embedding families for the fidelity bench: the shipped data seen through other heads.

A synthetic-distractor model must not be tuned to one fingerprinter. Each family
applies ONE fixed map to every row of every embedding file of data/ (flow
training rows, references, queries and distractors alike, so queries still find
their references: it is another fingerprinter's head on the same audio), then
L2-normalises. Track ids and ground truth are copied unchanged.

  shipped     the data as is (symlinks)
  unwhitened  a fixed random rotation, then a power-law scaling of the axes
              (variance of axis k ~ k^-0.8): strongly anisotropic, standing in
              for the encoder before its distortion whitening (see below)
  positive    leaky ReLU (negative slope 0.3) of a fixed random rotation: a
              nonlinear head whose values have a non-zero mean (~0.03, as
              PeakNetFP's) and skewed marginals
  lowrank     the top 48 principal components of the flow training rows kept,
              the other 80 scaled by 0.25, then a fixed random rotation: low
              intrinsic dimension, no per-row noise (the map is deterministic)

Why not the real unwhitened encoder: the whitening is folded into the last
layer's weights (rfp/audio/fingerprinter.py, whiten_last_layer), and neither
rfp/audio/weights/fingerprinter.npz nor fingerprinter.json keeps the matrix or
the kernel before folding, so it cannot be undone from the shipped files. The
exponent 0.8 instead of 1 keeps HR@1 within ~15 points of the shipped data
(k^-1 lost 19 points: 54.4% against 73.6%).

Every file is written atomically and the output is the same on every run
(fixed seeds). Prints per family: mean and std over all values, mean |per-dim
mean| and effective rank (participation ratio of the covariance eigenvalues) of
the flow training rows, and HR@1 of the queries against the references alone
(exact inner product).

  python bench/families.py                      # every family into runs/families/
  python bench/families.py --families positive --out /tmp/families
"""

import argparse
import json
import os
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
EMBEDDINGS = ('flow_train', 'reference', 'queries', 'distractors')  # mapped
COPIED = ('reference_tracks', 'ground_truth')  # row ids: unchanged
FAMILIES = ('shipped', 'unwhitened', 'positive', 'lowrank')


def rotation(seed):
  """A fixed random 128x128 orthogonal matrix."""
  q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((128, 128)))
  return q * np.sign(np.diag(r))  # Sign fix: QR's output is then unique.


def family_map(name, train):
  """(description, x -> y before normalisation) for one family; `train` are the
  shipped flow training rows (float64), which fit lowrank's components."""
  if name == 'unwhitened':
    rot, scale = rotation(1), np.arange(1, 129) ** -0.4  # Variance ~ k^-0.8.
    return 'random rotation, axis k scaled by k^-0.4', lambda x: (x @ rot) * scale
  if name == 'positive':
    rot = rotation(2)
    def leaky(x):
      u = x @ rot
      return np.where(u > 0, u, 0.3 * u)
    return 'leaky ReLU (slope 0.3) of a random rotation', leaky
  if name == 'lowrank':
    _, vecs = np.linalg.eigh(np.cov(train.T))
    keep = np.r_[np.ones(48), np.full(80, 0.25)]
    mix = (vecs[:, ::-1] * keep) @ rotation(3)  # Components in decreasing variance.
    return 'top 48 principal components kept, the rest x0.25, random rotation', lambda x: x @ mix
  raise ValueError(name)


def normalise(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def save_atomic(path, array):
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'wb') as f:
    np.save(f, array)
  os.replace(tmp, path)


def link_atomic(path, target):
  tmp = path.with_name(path.name + '.tmp')
  tmp.unlink(missing_ok=True)
  tmp.symlink_to(target)
  os.replace(tmp, path)


def statistics(folder):
  """Figures of the stored (float16) files, as the bench will read them."""
  x = np.load(folder / 'flow_train.npy').astype(np.float64)
  eig = np.linalg.eigvalsh(np.cov(x.T))
  ref = np.load(folder / 'reference.npy').astype(np.float32)
  q = np.load(folder / 'queries.npy').astype(np.float32)
  gt = np.load(folder / 'ground_truth.npy')
  return {'mean': float(x.mean()), 'std': float(x.std()),
          'mean_abs_dim_mean': float(np.abs(x.mean(0)).mean()),
          'effective_rank': float(eig.sum() ** 2 / (eig ** 2).sum()),
          'hr1_reference_only': float(np.mean(np.argmax(q @ ref.T, axis=1) == gt))}


def build(name, data, out):
  """Writes family `name` into out/name/ and returns its statistics."""
  folder = out / name
  folder.mkdir(parents=True, exist_ok=True)
  if name == 'shipped':
    description = 'the shipped data as is'
    for f in EMBEDDINGS + COPIED:
      link_atomic(folder / f'{f}.npy', (data / f'{f}.npy').resolve())
  else:
    train = np.load(data / 'flow_train.npy').astype(np.float64)
    description, fn = family_map(name, train)
    for f in EMBEDDINGS:
      x = np.load(data / f'{f}.npy').astype(np.float64)
      save_atomic(folder / f'{f}.npy', normalise(fn(x)).astype(np.float16))
    for f in COPIED:
      save_atomic(folder / f'{f}.npy', np.load(data / f'{f}.npy'))
  stats = {'family': name, 'map': description, **statistics(folder)}
  tmp = folder / 'family.json.tmp'
  tmp.write_text(json.dumps(stats, indent=1) + '\n')
  os.replace(tmp, folder / 'family.json')
  return stats


def print_table(rows):
  print(f'{"family":<11} {"mean":>8} {"std":>7} {"|dim mean|":>10} {"eff. rank":>9} {"HR@1 %":>7}')
  for s in rows:
    print(f'{s["family"]:<11} {s["mean"]:>+8.4f} {s["std"]:>7.4f} {s["mean_abs_dim_mean"]:>10.4f} '
          f'{s["effective_rank"]:>9.1f} {100 * s["hr1_reference_only"]:>7.2f}')


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--families', default=','.join(FAMILIES),
                      help=f'comma-separated subset of {",".join(FAMILIES)} (default: all)')
  parser.add_argument('--data', type=pathlib.Path, default=ROOT / 'data',
                      help='shipped data folder (default: data/)')
  parser.add_argument('--out', type=pathlib.Path, default=ROOT / 'runs' / 'families',
                      help='one sub-folder per family is written here (default: runs/families/)')
  args = parser.parse_args()
  names = [n for n in args.families.split(',') if n]
  unknown = sorted(set(names) - set(FAMILIES))
  if unknown:
    parser.error(f'unknown families {",".join(unknown)}; choose from {",".join(FAMILIES)}')
  print_table([build(n, args.data, args.out) for n in names])


if __name__ == '__main__':
  main()
