"""The demo run (configs/demo.py) distilled into a one-step sampler.

  python train.py --config configs/demo_distill.py        # after runs/demo is trained

The student starts from runs/demo's best checkpoint and learns, on 131,072
(noise, teacher row) pairs of its 16-evaluation sampler at its calibrated
temperature, to land on the teacher's row in one Euler step (rfp/distill.py).
It keeps the teacher's network (256x3): 12x the teacher's rows/s, hardness
within 0.30 points of it up to 1M distractors on the shipped data and 0.20 on
the unwhitened family. `--config.train.distill_model.depth=1` keeps only the
first block: 45x, within 0.15 on the shipped data (`make scale` uses it) but
0.25-0.50 easier than its teacher on the unwhitened family; check it on your
own run with bench/solver_quality.py --distilled (bench/RESULTS.md, "A
cheaper student").
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
