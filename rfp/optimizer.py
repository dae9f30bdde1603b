"""The optimizer every trainer uses: AdamW on a warm-up then cosine-decay schedule."""

import optax


def schedule(total_steps, lr, lr_end, warmup_steps):
  """Linear warm-up from 0 to `lr` (shortened to fit the run; none at 0 steps),
  then cosine decay to `lr_end` at `total_steps`."""
  warmup = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=lr if warmup == 0 else 0.0, peak_value=lr,
      warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1), end_value=lr_end)


def make_optimizer(lr_schedule, weight_decay, b1=0.9, b2=0.999, grad_clip=None):
  """AdamW at `lr_schedule`; with `grad_clip`, gradients are first clipped to that
  global norm."""
  adamw = optax.adamw(lr_schedule, b1=b1, b2=b2, weight_decay=weight_decay)
  if grad_clip is None:
    return adamw
  return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)


def from_config(train_cfg, total_steps):
  """(optimizer, schedule) with the settings of a `train` config section."""
  lr = schedule(total_steps, train_cfg.lr, train_cfg.lr_end, train_cfg.warmup_steps)
  return make_optimizer(lr, train_cfg.weight_decay, train_cfg.b1, train_cfg.b2,
                        train_cfg.grad_clip), lr
