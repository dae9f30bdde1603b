"""A small model that fits the shipped data in minutes on a 2-core CPU.

The main job of the README: train on data/flow_train.npy, sample, evaluate.
"""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'demo'
  c.model.width, c.model.depth, c.model.hidden = 256, 4, 1024
  c.train.epochs = 30
  c.train.batch_size = 256
  c.train.lr, c.train.lr_end, c.train.warmup_steps = 1e-3, 1e-5, 200
  c.train.val_samples = 4_000
  c.sample.steps = 32
  c.eval.index.nlist, c.eval.index.nprobe = 256, 40
  return c
