"""The optimizer factory: its schedule, and clipping only when asked for."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rfp import optimizer as optimizer_lib


def test_schedule_warms_up_from_zero_then_decays_to_the_end_rate():
  lr = optimizer_lib.schedule(100, lr=1e-3, lr_end=1e-5, warmup_steps=10)
  assert float(lr(0)) == 0.0 and np.isclose(float(lr(10)), 1e-3)
  assert np.isclose(float(lr(100)), 1e-5)
  short = optimizer_lib.schedule(5, lr=1e-3, lr_end=1e-5, warmup_steps=10)
  assert np.isclose(float(short(4)), 1e-3)  # The warm-up shortened to fit a run of 5 steps.
  assert np.isclose(float(optimizer_lib.schedule(5, 1e-3, 1e-5, 0)(0)), 1e-3)


def test_adamw_clips_only_when_asked_for():
  params, grads = {'w': jnp.ones(3)}, {'w': jnp.full(3, 100.0)}
  plain = optimizer_lib.make_optimizer(1e-2, weight_decay=0.0)
  reference = optax.adamw(1e-2, weight_decay=0.0)
  np.testing.assert_array_equal(plain.update(grads, plain.init(params), params)[0]['w'],
                                reference.update(grads, reference.init(params), params)[0]['w'])
  cfg = ml_collections.ConfigDict(dict(lr=1e-2, lr_end=1e-4, warmup_steps=0, weight_decay=0.0,
                                       b1=0.9, b2=0.999, grad_clip=1.0))
  clipped, lr = optimizer_lib.from_config(cfg, 10)
  assert np.isclose(float(lr(0)), 1e-2) and len(clipped.init(params)) == 2  # Clip, then AdamW.
