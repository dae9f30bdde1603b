"""Sampling throughput: samples/s and achieved FLOP/s against a plain matmul.

For each model config and matmul dtype, times the sampler that sample.py runs
(`rfp.noise.make_noise` + `rfp.generator.make_generator`: noise, a `lax.scan` over Euler
steps, de-normalisation and the float16 cast, batches sharded over all
devices, rows fetched to the host while later batches run) on randomly
initialised parameters. In the same run, taking turns with it, it times a
plain `[batch, width] @ [width, hidden]` matmul in the same dtype and
precision: the network's largest matmul, i.e. the rate the hardware gives this
workload's shapes. Achieved FLOP/s counts `model.flops_per_row` per network
evaluation. Prints one table; paste it into bench/RESULTS.md.

With `--tracks`, times instead, taking turns, the row sampler and the track
sampler (`sample.tracks`: the same network fed AR noise, `rfp.tracks`, whose
scan over rows carries state from batch to batch) and prints their rates.

  python bench/sample_throughput.py                        # demo and full model
  python bench/sample_throughput.py --tracks               # tracks against rows
  python bench/sample_throughput.py --configs base --batch-size 65536 --iters 20  # GPU
  python bench/sample_throughput.py --configs demo --dtypes float32 --steps 1 \
      --batch-size 4096 --models 256x3x768,256x1x768      # one-step students
"""

import argparse
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import numpy as np

from rfp import cli, data, generator, model as model_lib, noise as noise_lib, sampling, sharding, tracks  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parent.parent


def machine():
  """The hardware and JAX version, for the first line of a results table."""
  return (f'{platform.processor() or platform.machine()}, {jax.device_count()} x '
          f'{jax.devices()[0].device_kind}, jax {jax.__version__}')


def variants(names, dtypes, models=''):
  """(name, dtype, config) for each comma-separated configs/NAME.py, matmul dtype
  and WIDTHxDEPTHxHIDDEN network in `models` (none: the config's own), for
  128-d fingerprints (the configs leave the dimension to the data)."""
  shapes = [dict(zip(('width', 'depth', 'hidden'), map(int, m.split('x'))))
            for m in models.split(',') if m] or [{}]
  for name in names.split(','):
    for dtype in dtypes.split(','):
      for shape in shapes:
        yield name, dtype, cli.load_config(
            ROOT / 'configs' / f'{name}.py',
            [f'model.dtype={dtype!r}', 'model.dim=128'] + [f'model.{k}={v}' for k, v in shape.items()])


def seconds(fn, iters, finish=np.asarray):
  """Mean seconds per call over `iters` calls, `sampling.LOOKAHEAD` of them in flight.

  `finish` takes each result in order while later calls run: the sampler's rows
  are copied to the host, as write_samples does; a matmul's product is only
  waited for, since copying it out would time the host link, not the matmul.
  """
  calls = (fn() for _ in range(iters))
  start = time.perf_counter()
  for out in sampling.lookahead(calls, sampling.LOOKAHEAD):
    finish(out)
  return (time.perf_counter() - start) / iters


def make_matmul(batch, width, hidden, dtype, precision=None):
  """`[batch, width] @ [width, hidden]` at `precision`, by default as the sampler's
  matmuls run it; returns (call, FLOPs)."""
  if precision is None:  # The sampler's: full float32 (no TF32 on GPUs), or bfloat16.
    precision = 'highest' if dtype == jnp.float32 else 'default'
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.normal(size=(batch, width)), dtype)
  b = jnp.asarray(rng.normal(size=(width, hidden)) / np.sqrt(width), dtype)
  mm = jax.jit(lambda a, b: jnp.dot(a, b, precision=precision))
  return lambda: mm(a, b), 2 * batch * width * hidden


def random_params(net, dim, key):
  """Initialised parameters with every zero-initialised weight made random too."""
  params = net.init(key, jnp.zeros((1, dim)), jnp.zeros((1,)))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
  return jax.tree.unflatten(treedef, [p + 0.02 * jax.random.normal(k, p.shape, p.dtype)
                                      for p, k in zip(leaves, keys)])


def track_noise(dim, batch, mesh, rows):
  """`start -> z_bd` over a track shard of `rows` rows (tracks of the demo data's
  mean length, weights and repeats of a typical fit), carrying the state as sample.py does."""
  weights = [[0.0, 0.0, 0.3, 0.0, 0.0, 0.1, 0.2, 0.3]]
  repeat = {'p': 0.7, 'lags': [8, 10, 14, 18, 24, 32, 48, 64, 96, 140, 250],
            'rhos': [0.8, 0.84, 0.87, 0.9, 0.91, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99]}
  plan = {'rates': list(tracks.RATES), 'scales': tracks.scales(weights).tolist(),
          'history': tracks.history_rows([464])}
  bounds, sections = tracks.layout(0, 0, rows, [464], [0], repeats=[repeat], jitter=0.07)
  noise = tracks.make_track_noise(dim, batch, mesh, tracks.RATES, plan['history'])
  state = {'noise': tracks.initial_state(dim, tracks.RATES, plan['history'])}

  def draw(start):
    inputs = tracks.row_inputs(bounds, sections, plan['scales'], start, start + batch)
    z_bd, state['noise'] = noise(np.uint32(0), np.int32(0), np.int32(start), state['noise'],
                                 inputs)
    return z_bd

  return draw


def make_sampler(cfg, steps, batch, with_tracks=False, rows=1 << 22):
  """One batch of the sampling path, as sample.py runs it; returns (call, rows per call).

  With `with_tracks`, the noise is a track shard's of `rows` rows (calls wrap around)."""
  mesh = sharding.data_mesh()
  batch = sharding.round_up(batch, mesh)
  net = model_lib.from_config(cfg.model)
  params = sharding.put_replicated(random_params(net, cfg.model.dim, jax.random.key(0)), mesh)
  stats = data.Stats(np.zeros(cfg.model.dim, np.float32), np.ones(cfg.model.dim, np.float32))
  generate = generator.make_generator(net, steps, 'euler', mesh, stats=stats,
                                      out_dtype=jnp.float16)
  noise = noise_lib.make_noise(cfg.model.dim, batch, mesh)
  if with_tracks:
    rows = -(-rows // batch) * batch
    draw = track_noise(cfg.model.dim, batch, mesh, rows)
  else:
    draw = lambda start: noise(np.uint32(0), np.int32(0), np.int32(start))
  counter = iter(range(1 << 30))

  def one_batch():
    start = next(counter) * batch
    return generate(params, draw(start % rows if with_tracks else start))

  return one_batch, batch


def measure(cfg, steps, batch, iters, repeats):
  """(samples/s, matmul FLOP/s): the best of `repeats` interleaved timings.

  Sampler and matmul take turns, so load from other processes hits both alike.
  """
  sample, batch = make_sampler(cfg, steps, batch)
  matmul, flops = make_matmul(batch, cfg.model.width, cfg.model.hidden, jnp.dtype(cfg.model.dtype))
  jax.block_until_ready([sample(), matmul()])  # Compile.
  sample_s, matmul_s = float('inf'), float('inf')
  for _ in range(repeats):
    sample_s = min(sample_s, seconds(sample, iters))
    matmul_s = min(matmul_s, seconds(matmul, 8 * iters, jax.block_until_ready))
  return batch / sample_s, flops / matmul_s


def measure_tracks(cfg, steps, batch, iters, repeats):
  """(rows samples/s, tracks samples/s): the best of `repeats` interleaved timings."""
  rows, batch = make_sampler(cfg, steps, batch)
  with_tracks, _ = make_sampler(cfg, steps, batch, with_tracks=True)
  jax.block_until_ready([rows(), with_tracks()])  # Compile.
  rows_s, tracks_s = float('inf'), float('inf')
  for _ in range(repeats):
    rows_s = min(rows_s, seconds(rows, iters))
    tracks_s = min(tracks_s, seconds(with_tracks, iters))
  return batch / rows_s, batch / tracks_s


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--configs', default='demo,base', help='configs/NAME.py to time')
  parser.add_argument('--dtypes', default='float32,bfloat16', help='matmul dtypes to time')
  parser.add_argument('--steps', type=int, default=32, help='Euler steps (default: 32)')
  parser.add_argument('--batch-size', type=int, default=256,
                      help='rows per sampler call, over all devices (default: 256; CPUs do a '
                      'little better at 1-4k, GPUs want 16k+)')
  parser.add_argument('--models', default='',
                      help="networks to time instead of each config's own, as "
                      'WIDTHxDEPTHxHIDDEN,... (e.g. distilled students)')
  parser.add_argument('--iters', type=int, default=2, help='sampler calls per timing')
  parser.add_argument('--repeats', type=int, default=3,
                      help='interleaved timings; the best is kept')
  parser.add_argument('--tracks', action='store_true',
                      help='time the track sampler against the row sampler instead')
  args = parser.parse_args()
  print(f'# {machine()}, {args.steps} Euler steps, batch {args.batch_size}')
  if args.tracks:
    print('| config | model | matmul dtype | rows samples/s | tracks samples/s | tracks/rows |')
    print('|---|---|---|---|---|---|')
    for name, dtype, cfg in variants(args.configs, args.dtypes, args.models):
      rows, with_tracks = measure_tracks(cfg, args.steps, args.batch_size, args.iters,
                                         args.repeats)
      print(f'| {name} | {cfg.model.width}x{cfg.model.depth}x{cfg.model.hidden} {cfg.model.ffn} | {dtype} | '
            f'{rows:,.0f} | {with_tracks:,.0f} | {with_tracks / rows:.2f} |', flush=True)
    return
  # "at the matmul rate": the samples/s the network's FLOPs would allow at the
  # plain matmul's rate, the limit this hardware sets for it.
  print('| config | model | matmul dtype | samples/s | at the matmul rate | model TFLOP/s | '
        'matmul TFLOP/s | ratio |')
  print('|---|---|---|---|---|---|---|---|')
  for name, dtype, cfg in variants(args.configs, args.dtypes, args.models):
    m = cfg.model
    rate, peak = measure(cfg, args.steps, args.batch_size, args.iters, args.repeats)
    flops = model_lib.flops_per_row(m) * args.steps
    print(f'| {name} | {m.width}x{m.depth}x{m.hidden} {m.ffn} | {dtype} | {rate:,.0f} | '
          f'{peak / flops:,.0f} | {flops * rate / 1e12:.4f} | {peak / 1e12:.4f} | '
          f'{flops * rate / peak:.0%} |', flush=True)


if __name__ == '__main__':
  main()
