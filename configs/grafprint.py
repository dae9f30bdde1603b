"""GraFPrint: 16 kHz, 1 s, 64-bin mel, GNN on spectral peaks; queries with
noise and full room responses. Same memmap folder layout as NAFP.

  python train.py --config configs/grafprint.py --nafp DIR --config.size=small   # minutes on a CPU
"""

from configs import base


def get_config(size='paper'):
  c = base.get_config(size)
  c.name = 'grafprint'
  c.system.name = 'GraFPrint'
  base.nafp_layout(c, 'grafprint')
  c.eval.index.nlist, c.eval.index.nprobe = 64, 20
  return c
