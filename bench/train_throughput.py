"""Training throughput: steps/s and achieved FLOP/s against a plain matmul.

For each model config and matmul dtype, times the jitted training step (the
same `rfp.training.train_step` that train.py runs, sharded over all devices) and,
in the same run, a plain `[batch, width] @ [width, hidden]` matmul in the same
dtype: the largest matmul of the network, i.e. the rate the hardware gives this
workload's shapes. Prints one table; paste it into bench/RESULTS.md.

  python bench/train_throughput.py                      # demo and full model
  python bench/train_throughput.py --batch-size 1024 --iters 20
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import numpy as np

from bench import sample_throughput  # pylint: disable=wrong-import-position
from rfp import model as model_lib, optimizer as optimizer_lib, sharding, training  # pylint: disable=wrong-import-position


def train_steps_per_s(cfg, batch, iters):
  mesh = sharding.data_mesh()
  net = model_lib.from_config(cfg.model)
  optimizer, _ = optimizer_lib.from_config(cfg.train, total_steps=1000)
  state = sharding.put_replicated(
      training.init_state(net, optimizer, jax.random.key(0), cfg.model.dim), mesh)
  x = sharding.put_batch(np.random.default_rng(0).normal(size=(batch, cfg.model.dim)), mesh)
  step = jax.jit(lambda s, x, k: training.train_step(net, optimizer, s, x, k))
  key = jax.random.key(1)
  step(state, x, key)[1]['loss'].block_until_ready()  # Compile outside the timing.
  return 1.0 / sample_throughput.seconds(lambda: step(state, x, key)[1]['loss'], iters)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--configs', default='demo,base', help='configs/NAME.py to time')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--iters', type=int, default=5)
  args = parser.parse_args()
  print(f'# {sample_throughput.machine()}, batch {args.batch_size}')
  print('| config | model | matmul dtype | steps/s | rows/s | model TFLOP/s | matmul TFLOP/s | ratio |')
  print('|---|---|---|---|---|---|---|---|')
  for name, dtype, cfg in sample_throughput.variants(args.configs, args.dtypes):
    m = cfg.model
    rate = train_steps_per_s(cfg, args.batch_size, args.iters)
    # Forward plus backward (gradients for activations and weights): 3x.
    achieved = 3 * model_lib.flops_per_row(m) * args.batch_size * rate
    # train_step runs at default precision (TF32 on GPUs), and so does its baseline.
    matmul, flops = sample_throughput.make_matmul(args.batch_size, m.width, m.hidden,
                                                  jnp.dtype(dtype), precision='default')
    jax.block_until_ready(matmul())  # Compile and finish before timing starts.
    peak = flops / sample_throughput.seconds(matmul, args.iters * 4)
    print(f'| {name} | {m.width}x{m.depth} {m.ffn} | {dtype} | {rate:.2f} | '
          f'{rate * args.batch_size:,.0f} | {achieved / 1e12:.4f} | {peak / 1e12:.4f} | '
          f'{achieved / peak:.0%} |', flush=True)


if __name__ == '__main__':
  main()
