"""PeakNetFP: 8 kHz, 1 s / 0.5 s hop, PointNet++ on mel peaks; queries with
time stretching 0.5-2.0. Same memmap folder layout as NAFP. Its embeddings
have a clearly non-zero mean (0.034), so per-dimension normalisation matters."""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'peaknetfp'
  c.system.name = 'PeakNetFP'
  c.system.input = 'folder with db.mm, query.mm, dummy_db.mm (+ *_shape.npy), float32'
  c.system.train_mean, c.system.train_std = 0.033622, 0.081744
  base.nafp_layout(c, 'peaknetfp')
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
