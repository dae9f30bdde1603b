"""NAFP (Chang et al.): 8 kHz, 1 s / 0.5 s hop, 256-bin mel; queries with
0-10 dB noise and short room responses. Reads a NAFP folder, nafp/ (`ln -s` yours,
or `build_data.py --layout nafp` writes the shipped data so); multi-segment
queries are runs of consecutive query rows.

  python train.py --config configs/nafp.py --nafp DIR --config.size=small   # minutes on a CPU
"""

from configs import base


def get_config(size='paper'):
  c = base.get_config(size)
  c.name = 'nafp'
  c.system.name = 'NAFP'
  base.nafp_layout(c, 'nafp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
