"""GraFPrint: 16 kHz, 1 s, 64-bin mel, GNN on spectral peaks; queries with
noise and full room responses. Same memmap folder layout as NAFP."""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'grafprint'
  c.system.name = 'GraFPrint'
  c.system.input = 'folder with db.mm, query.mm, dummy_db.mm (+ *_shape.npy), float32'
  c.system.train_mean, c.system.train_std = -0.000263, 0.088348
  base.nafp_layout(c, 'grafprint')
  c.eval.index.nlist, c.eval.index.nprobe = 64, 20
  return c
