"""The demo run (configs/demo.py) distilled into a one-step sampler.

  python train.py --config configs/demo_distill.py        # after runs/demo is trained

The student starts from runs/demo's best checkpoint and learns, on 131,072
(noise, teacher row) pairs of its 16-evaluation sampler at its calibrated
temperature, to land on the teacher's row in one Euler step (rfp/distill.py;
figures in bench/RESULTS.md, Distillation).
"""

from configs import demo


def get_config():
  c = demo.get_config()
  c.name = 'demo-distilled'
  c.train.distill_from = 'runs/demo'
  c.train.distill_pairs = 131_072
  c.train.distill_steps = 1
  # How the student samples (train.py writes the same into the run's config.json;
  # a command given this file instead reads it here).
  c.sample.solver, c.sample.steps = 'euler', c.train.distill_steps
  c.train.epochs = 12
  return c
