"""Reference fingerprinter training throughput, against flax's nn.Conv and plain matmuls.

Times the jitted training step that `build_data.py --retrain-fingerprinter` runs
(`rfp.audio.fingerprinter.make_train_step`: pair sampling, reverb and noise,
log-mel, encoder forward and backward, AdamW) on random audio, twice: with the
shipped convolutions (one matmul over gathered patches) and with flax's
`nn.Conv`, which computes the same function from the same weights. In the same
run it times the encoder's own matmuls (`fingerprinter.matmul_shapes`, forward,
at the step's batch): the rate the hardware gives these shapes. Encoder FLOP/s
count forward + backward as 3x `fingerprinter.flops_per_example` per input
(two inputs per pair); distortion and log-mel are timed but not counted.
Then it times what `build_data.py` spends its export on: database rows
(`embed.window_fingerprints`, every window at `embed.DATABASE_SHIFTS`) of
tracks of random length with the shipped weights, with each track in its own
batches (the last one padded) and with tracks grouped so that they share
batches, against the forward matmuls of the same encoder at the same batch.
Prints two tables; paste them into bench/RESULTS.md.

  python bench/fingerprinter_throughput.py
  python bench/fingerprinter_throughput.py --batch 1024 --iters 10   # GPU
"""

import argparse
import functools
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import flax.linen as nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from bench import sample_throughput  # pylint: disable=wrong-import-position
from rfp.audio import augment, embed, fingerprinter, training  # pylint: disable=wrong-import-position
from rfp.audio.features import SAMPLE_RATE  # pylint: disable=wrong-import-position

CONVS = {'patch matmul (shipped)': fingerprinter.Conv3x3Stride2,
         'flax nn.Conv': functools.partial(nn.Conv, kernel_size=(3, 3), strides=(2, 2),
                                           padding='SAME')}


def step_seconds(conv, batch, per_track, iters):
  """Seconds per training step of an encoder built with `conv`."""
  model = fingerprinter.Encoder(conv=conv)
  optimizer = fingerprinter.make_optimizer(1000)
  params = fingerprinter.init_params(jax.random.key(0), model)
  opt_state = optimizer.init(params)
  step = fingerprinter.make_train_step(optimizer, 0.05, batch, per_track, model)
  rng = np.random.default_rng(0)
  audio = jnp.asarray(0.1 * rng.standard_normal(8000 * 600), jnp.float32)
  noise = jnp.asarray(0.1 * rng.standard_normal(8000 * 120), jnp.float32)
  bounds = jnp.asarray([[0, 8000 * 200], [8000 * 200, 8000 * 400], [8000 * 400, 8000 * 600]])
  rirs = augment.room_impulse_responses(jax.random.key(1), 64)
  run = lambda: step(params, opt_state, jax.random.key(2), audio, bounds[:, 0], bounds[:, 1],
                     noise, rirs)[2]
  jax.block_until_ready(run())  # Compile outside the timing.
  return sample_throughput.seconds(run, iters)


def matmul_seconds(examples, iters, shapes=None):
  """Seconds for the encoder's forward matmuls (`fingerprinter.matmul_shapes`)
  over `examples` inputs, one jitted call each."""
  rng = np.random.default_rng(0)
  calls = []
  for rows, inputs, outputs in shapes or fingerprinter.matmul_shapes():
    a = jnp.asarray(rng.standard_normal((examples * rows, inputs)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((inputs, outputs)) / np.sqrt(inputs), jnp.float32)
    mm = jax.jit(jnp.dot)
    jax.block_until_ready(mm(a, b))
    calls.append(functools.partial(mm, a, b))
  return sum(sample_throughput.seconds(call, iters) for call in calls)


def embed_table(n_tracks, iters):
  """Windows/s of database rows with per-track and with shared batches."""
  params = fingerprinter.load_weights(training.WEIGHTS)
  enc = fingerprinter.encoder_for(params)
  rng = np.random.default_rng(0)
  tracks = [0.1 * rng.standard_normal(int(s * SAMPLE_RATE)).astype(np.float32)
            for s in rng.uniform(30, 240, n_tracks)]
  windows = sum(embed.n_windows(x.size) for x in tracks) * len(embed.DATABASE_SHIFTS)
  flops_per_window = fingerprinter.flops_per_example(enc.channels, enc.hidden, enc.dim)
  shapes = fingerprinter.matmul_shapes(enc.channels, enc.hidden, enc.dim)
  matmul_rate = flops_per_window * 512 / matmul_seconds(512, iters, shapes)
  embed.window_fingerprints(params, tracks[:1])  # Compile outside the timing.
  print(f'\n# {sample_throughput.machine()}, shipped weights (channels {list(enc.channels)}), '
        f'{n_tracks} tracks, {windows} windows over {len(embed.DATABASE_SHIFTS)} offsets')
  print('| batches | s | windows/s | encoder GFLOP/s | matmul GFLOP/s (same shapes, batch 512) | ratio |')
  print('|---|---|---|---|---|---|')
  times = {}
  for name, group_rows in (('one track at a time', 1), ('tracks share batches (shipped)', 8192)):
    times[name] = min(sample_throughput.seconds(
        lambda: embed.window_fingerprints(params, tracks, group_rows=group_rows), 1) for _ in range(iters))
    rate = flops_per_window * windows / times[name]
    print(f'| {name} | {times[name]:.1f} | {windows / times[name]:.0f} | {rate / 1e9:.1f} | '
          f'{matmul_rate / 1e9:.1f} | {rate / matmul_rate:.0%} |', flush=True)
  apart, shared = times.values()
  print(f'\nshared batches are {apart / shared:.2f}x as fast')


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--batch', type=int, default=256, help='pairs per step')
  parser.add_argument('--per-track', type=int, default=16)
  parser.add_argument('--iters', type=int, default=3)
  parser.add_argument('--embed-tracks', type=int, default=8,
                      help='tracks of 30-240 s for the embedding table (0: skip it)')
  args = parser.parse_args()
  examples = 2 * args.batch
  flops = 3 * fingerprinter.flops_per_example() * examples
  matmul_rate = fingerprinter.flops_per_example() * examples / matmul_seconds(examples, args.iters)
  print(f'# {sample_throughput.machine()}, batch {args.batch} pairs')
  print('| convolutions | s/step | pairs/s | encoder GFLOP/s | matmul GFLOP/s (same shapes) | ratio |')
  print('|---|---|---|---|---|---|')
  times = {}
  for name, conv in CONVS.items():
    times[name] = step_seconds(conv, args.batch, args.per_track, args.iters)
    rate = flops / times[name]
    print(f'| {name} | {times[name]:.2f} | {args.batch / times[name]:.0f} | {rate / 1e9:.1f} | '
          f'{matmul_rate / 1e9:.1f} | {rate / matmul_rate:.0%} |', flush=True)
  shipped, flax_conv = times.values()
  print(f'\nshipped step is {flax_conv / shipped:.2f}x as fast as with nn.Conv')
  if args.embed_tracks:
    embed_table(args.embed_tracks, args.iters)


if __name__ == '__main__':
  main()
