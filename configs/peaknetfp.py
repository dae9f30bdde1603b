"""PeakNetFP: 8 kHz, 1 s / 0.5 s hop, PointNet++ on mel peaks; queries with
time stretching 0.5-2.0. Same memmap folder layout as NAFP. Its embeddings
have a clearly non-zero mean (0.034), so per-dimension normalisation matters.

  python train.py --config configs/peaknetfp.py --nafp DIR --config.size=small   # minutes on a CPU
"""

from configs import base


def get_config(size='paper'):
  c = base.get_config(size)
  c.name = 'peaknetfp'
  c.system.name = 'PeakNetFP'
  base.nafp_layout(c, 'peaknetfp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
