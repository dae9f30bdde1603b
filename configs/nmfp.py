"""NMFP: 8 kHz, 1 s / 0.5 s hop, 256-bin mel; queries with 0-10 dB noise and
room/microphone responses. Stores one `database.mm` (+ shape file) with a
`database.csv` of track boundaries, and one `.npy` per query: stack the
queries into one `[n, 128]` .npy for `eval.queries`."""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'nmfp'
  c.system.name = 'NMFP'
  c.system.input = 'database.mm (+ database_shape.npy) and database.csv; queries as .npy'
  c.system.train_mean, c.system.train_std = -0.000410, 0.088388
  c.data.train = 'nmfp/database.mm'
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
