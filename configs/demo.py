"""A small model that fits the shipped data in minutes on a 2-core CPU.

The main job of the README (`make demo`): train on data/flow_train.npy, sample
1M synthetic fingerprints, evaluate them against the real distractor pool.
The model and training are base.py's 'small' size; sampling uses its 8
midpoint steps (16 network evaluations): FD to held-out rows is already flat
at 2 steps (bench/RESULTS.md, Sampling), but hardness is not: 8 steps make
rows 0.3 points of hardness closer to real ones than 4 (Fidelity). The
evaluation is base.py's, sized for a CPU: 1k to 1M distractors, 2 repeats, one
shared index trained on 50k rows, 500 multi-segment queries.
"""

from configs import base


def get_config():
  c = base.get_config('small')
  c.name = 'demo'
  return c
