"""NMFP: 8 kHz, 1 s / 0.5 s hop, 256-bin mel; queries with 0-10 dB noise and
room/microphone responses. Reads its files as they are (rfp/layouts.py): each
database a `database.mm` with a `database.csv` of track boundaries, one `.npy`
`[segments, 128]` per query with `queries.csv`, and `ground_truth.csv`; under
nmfp/ as `build_data.py --layout nmfp` writes them."""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'nmfp'
  c.system.name = 'NMFP'
  c.system.input = 'database.mm + database.csv; one .npy per query, queries.csv, ground_truth.csv'
  c.system.train_mean, c.system.train_std = -0.000410, 0.088388
  base.nmfp_layout(c, 'nmfp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
