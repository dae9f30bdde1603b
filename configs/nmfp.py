"""NMFP: 8 kHz, 1 s / 0.5 s hop, 256-bin mel; queries with 0-10 dB noise and
room/microphone responses. Reads its files as NMFP's scripts write them
(rfp/layouts.py): each database a `database.mm` with a `database.csv` of track
boundaries, one `.npy` `[segments, 128]` per query recording with
`queries.csv`, and `ground_truth.csv`; a query starts every 7 segments of each
recording (its `delta_n`). Under nmfp/ (`build_data.py --layout nmfp` writes
the shipped data so), or `--nmfp DIR`.

  python train.py --config configs/nmfp.py --nmfp DIR --config.size=small   # minutes on a CPU
"""

from configs import base


def get_config(size='paper'):
  c = base.get_config(size)
  c.name = 'nmfp'
  c.system.name = 'NMFP'
  base.nmfp_layout(c, 'nmfp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
