"""Sample synthetic fingerprints from a trained run into .npy shards.

  python sample.py --workdir runs/demo --n 1000000 --shards 10
  python sample.py --n 100000000 --shards 64 --config.sample.matmul_dtype=bfloat16

Writes OUT/shard-00000.npy ... (one [rows, dim] array each, in the embedding
space, loadable with np.load(path, mmap_mode='r')) and OUT/manifest.json.
"""

import os
import pathlib
import sys

from rfp import cli, files
from rfp.errors import InputError

_RUN_CONFIG = 'WORKDIR/config.json'
_EPILOG = """\
Settings are the run's config.sample section (solver, steps, batch_size, dtype,
sphere, checkpoint, matmul_dtype, seed, temperature), overridden as
--config.sample.KEY=VALUE. The temperature defaults to the run's calibrated one.
Rows of shard i depend only on (seed, i, the checkpoint, solver, steps,
matmul_dtype, temperature): not on batch_size, the number of devices or of hosts.
Running the same command again skips complete shards and redoes partial ones;
a different command into the same --out is refused.

--tracks (sample.tracks=True) writes whole tracks instead of i.i.d. rows: the
same network on noise correlated from window to window, fitted to the
training tracks (WORKDIR/temporal.json); each shard also gets
shard-NNNNN.bounds.npy, its tracks' first rows then its row count
(sample.track_length fixes the length; docs/tracks.md).

Several hosts: start the same command on every host with --distributed (or
RFP_DISTRIBUTED=1). Under SLURM, Open MPI or Kubernetes JAX finds the other
processes itself; elsewhere also pass --coordinator HOST:PORT (process 0's
address), --num-processes P and --process-id p. Process p writes shards
p, p + P, p + 2P, ... into --out (shared or not), so use at least P shards."""


def make_parser():
  parser = cli.make_parser(__doc__, _RUN_CONFIG, epilog=_EPILOG)
  parser.add_argument('--workdir', default=None,
                      help='training run to sample from (default: the most recent under runs/)')
  parser.add_argument('--n', type=int, default=None, help='total number of rows (sample.n)')
  parser.add_argument('--shards', type=int, default=None,
                      help='number of .npy files (sample.shards; default 1)')
  parser.add_argument('--seed', type=int, default=None, help='noise seed (sample.seed; default 0)')
  parser.add_argument('--tracks', action='store_true',
                      help='whole tracks with per-shard bounds, not i.i.d. rows (sample.tracks)')
  parser.add_argument('--out', default=None, help='output folder (default: WORKDIR/samples)')
  parser.add_argument('--distributed', action='store_true',
                      help='call jax.distributed.initialize() first (also when RFP_DISTRIBUTED=1)')
  parser.add_argument('--coordinator', default=None, metavar='HOST:PORT',
                      help='with --distributed outside SLURM/MPI/Kubernetes: process 0\'s address '
                      '(or set JAX_COORDINATOR_ADDRESS)')
  parser.add_argument('--num-processes', type=int, default=None,
                      help='with --distributed outside a cluster manager: number of processes')
  parser.add_argument('--process-id', type=int, default=None,
                      help='with --distributed outside a cluster manager: this process, 0-based')
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
  rest, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
  args = make_parser().parse_args(rest)
  workdir = pathlib.Path(args.workdir) if args.workdir else files.latest_run('runs')
  config = cli.run_config(files.read_config(workdir),
                          None if args.config == _RUN_CONFIG else args.config, overrides,
                          source=workdir / 'config.json')
  for flag in ('n', 'shards', 'seed'):  # Shorthands for config.sample.*.
    if getattr(args, flag) is not None:
      config.sample[flag] = getattr(args, flag)
  if args.tracks:
    config.sample.tracks = True
  if config.sample.n is None:
    raise InputError('--n is required: the number of rows to sample')
  from rfp import sampling  # Heavy imports only once the arguments are valid.
  sampling.check_config(config.sample)
  if args.distributed or os.environ.get('RFP_DISTRIBUTED') == '1':
    _initialize_distributed(args)
  out = pathlib.Path(args.out) if args.out else workdir / 'samples'
  manifest = sampling.write_samples(workdir, out, config.sample, progress=not args.quiet)
  import jax  # pylint: disable=g-import-not-at-top  (already loaded by rfp.sampling)
  if jax.process_count() > 1:
    print(f'{out}: process {jax.process_index()} of {jax.process_count()} has written its shards')
  else:
    print(f'{out}: {manifest["n"]} rows in {manifest["shards"]} shards ({manifest["dtype"]}) '
          f'from {manifest["checkpoint"]["which"]} checkpoint step '
          f'{manifest["checkpoint"]["step"]}, {manifest["solver"]} x {manifest["steps"]} steps')


if __name__ == '__main__':
  sys.exit(main())
