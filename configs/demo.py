"""A small model that fits the shipped data in minutes on a 2-core CPU.

The main job of the README (`make demo`): train on data/flow_train.npy, sample
1M synthetic fingerprints, evaluate them against the real distractor pool.
Sampling uses 8 midpoint steps (16 network evaluations): FD to held-out rows
is already flat at 2 steps (bench/RESULTS.md, Sampling), but hardness is not:
8 steps make rows 0.3 points of hardness closer to real ones than 4 (Fidelity).
"""

from configs import base


def get_config():
  c = base.get_config()
  c.name = 'demo'
  c.data.val_fraction = 0.1
  c.model.width, c.model.depth, c.model.hidden = 256, 3, 768
  c.train.epochs = 20
  c.train.batch_size = 512
  c.train.lr, c.train.lr_end, c.train.warmup_steps = 1e-3, 1e-5, 200
  c.train.val_samples = 10_000
  c.sample.solver, c.sample.steps = 'midpoint', 8
  c.eval.sizes = [1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
  c.eval.repeats = 2
  # PQ training (tens of seconds per index on a 2-core CPU) would dominate the
  # demo: train one index on 50k references + real rows and reuse it.
  c.eval.index.train_rows = 50_000
  c.eval.index.shared_training = True
  # Multi-segment queries at the real curve's sizes, for real, i.i.d. synthetic
  # rows, synthetic tracks and the floor: 500 queries keep them to a few minutes.
  c.eval.num_sequence_queries = 500
  return c
