"""Sample synthetic fingerprints from a trained run into .npy shards.

  python sample.py --workdir runs/demo --n 1000000 --shards 10

Writes OUT/shard-00000.npy ... (one [rows, dim] array each, in the embedding
space, loadable with np.load(path, mmap_mode='r')) and OUT/manifest.json.
"""

import argparse
import os
import pathlib
import sys

from rfp import cli
from rfp.errors import InputError

_EPILOG = """\
Rows of shard i depend only on (--seed, i, the checkpoint, --solver, --steps,
--matmul-dtype): not on --batch-size, the number of devices or of hosts.
Running the same command again skips complete shards and redoes partial ones;
a different command into the same --out is refused.

Several hosts: start the same command on every host with --distributed (or
RFP_DISTRIBUTED=1). Under SLURM, Open MPI or Kubernetes JAX finds the other
processes itself; elsewhere also pass --coordinator HOST:PORT (process 0's
address), --num-processes P and --process-id p. Process p writes shards
p, p + P, p + 2P, ... into --out (shared or not), so use at least P shards."""


def make_parser():
  parser = cli.Parser(description=__doc__, epilog=_EPILOG,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default=None,
                      help='training run to sample from (default: the most recent under runs/)')
  parser.add_argument('--n', type=int, required=True, help='total number of rows')
  parser.add_argument('--shards', type=int, default=1, help='number of .npy files (default: 1)')
  parser.add_argument('--out', default=None, help='output folder (default: WORKDIR/samples)')
  parser.add_argument('--seed', type=int, default=0, help='noise seed (default: 0)')
  parser.add_argument('--steps', type=int, default=None,
                      help="solver steps (default: the run's config.sample.steps)")
  parser.add_argument('--solver', default=None, help="euler, heun or midpoint "
                      "(default: the run's config.sample.solver); heun and midpoint "
                      'evaluate the network twice per step')
  parser.add_argument('--dtype', default='float16', help='float16 (default) or float32 on disk')
  parser.add_argument('--batch-size', type=int, default=None,
                      help="rows per sampler call, split over all local devices (default: the "
                      "run's config.sample.batch_size); only speed and memory depend on it")
  parser.add_argument('--matmul-dtype', default=None,
                      help="float32 or bfloat16: the network's compute dtype while sampling "
                      "(default: the run's config.model.dtype); bfloat16 is much faster on GPUs")
  parser.add_argument('--sphere', action='store_true',
                      help='project rows onto the unit sphere after de-normalising')
  parser.add_argument('--checkpoint', default='best',
                      help='best (lowest validation FD; default) or latest')
  parser.add_argument('--distributed', action='store_true',
                      help='call jax.distributed.initialize() first (also when RFP_DISTRIBUTED=1)')
  parser.add_argument('--coordinator', default=None, metavar='HOST:PORT',
                      help='with --distributed outside SLURM/MPI/Kubernetes: process 0\'s address '
                      '(or set JAX_COORDINATOR_ADDRESS)')
  parser.add_argument('--num-processes', type=int, default=None,
                      help='with --distributed outside a cluster manager: number of processes')
  parser.add_argument('--process-id', type=int, default=None,
                      help='with --distributed outside a cluster manager: this process, 0-based')
  parser.add_argument('--no-progress', action='store_true', help='no progress bar')
  return parser


def _initialize_distributed(args):
  """Joins the other processes; must run before anything touches a device."""
  import jax  # pylint: disable=g-import-not-at-top
  try:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  except ValueError as e:  # Settings neither given nor detected.
    raise InputError(f'--distributed: {e} (pass --coordinator, --num-processes and '
                     '--process-id, or launch under SLURM/MPI/Kubernetes)') from e


@cli.main
def main(argv=None):
  args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
  from rfp import checkpoint, shards  # Heavy imports only once the arguments parse.
  shards.check_args(args.n, args.shards, args.seed, args.steps, args.solver, args.dtype,
                     args.batch_size, args.checkpoint, args.matmul_dtype)
  if args.distributed or os.environ.get('RFP_DISTRIBUTED') == '1':
    _initialize_distributed(args)
  workdir = pathlib.Path(args.workdir) if args.workdir else checkpoint.latest_run('runs')
  out = pathlib.Path(args.out) if args.out else workdir / 'samples'
  manifest = shards.write_samples(
      workdir, out, args.n, args.shards, seed=args.seed, steps=args.steps, solver=args.solver,
      dtype=args.dtype, batch_size=args.batch_size, sphere=args.sphere, which=args.checkpoint,
      matmul_dtype=args.matmul_dtype, progress=not args.no_progress)
  import jax  # pylint: disable=g-import-not-at-top  (already loaded by rfp.shards)
  if jax.process_count() > 1:
    print(f'{out}: process {jax.process_index()} of {jax.process_count()} has written its shards')
  else:
    print(f'{out}: {manifest["n"]} rows in {manifest["shards"]} shards ({manifest["dtype"]}) '
          f'from {manifest["checkpoint"]["which"]} checkpoint step '
          f'{manifest["checkpoint"]["step"]}, {manifest["solver"]} x {manifest["steps"]} steps')


if __name__ == '__main__':
  sys.exit(main())
