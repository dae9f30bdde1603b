"""NAFP (Chang et al.): 8 kHz, 1 s / 0.5 s hop, 256-bin mel; queries with
0-10 dB noise and short room responses. Reads a NAFP folder, nafp/ (`ln -s` yours,
or `build_data.py --layout nafp` writes the shipped data so); multi-segment
queries are runs of consecutive query rows."""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'nafp'
  c.system.name = 'NAFP'
  c.system.input = 'folder with db.mm, query.mm, dummy_db.mm (+ *_shape.npy), float32'
  c.system.train_mean, c.system.train_std = 0.000703, 0.088386
  base.nafp_layout(c, 'nafp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
