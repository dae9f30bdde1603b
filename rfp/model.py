"""The velocity network: a residual MLP with adaptive LayerNorm (paper, Table 1).

`VelocityMLP(x_bd, t)` predicts v = z - x at time t. `t` is either one time
per row (`[batch]`, training) or a single scalar (`[]`, sampling), in which
case the time embedding and every block's scale/shift are computed once for
the whole batch rather than once per row.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from rfp.errors import InputError


def timestep_embedding(t, dim, max_period=10_000.0):
  """Sinusoidal embedding of t in [0, 1]: `[...] -> [..., dim]`."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  # Scale t so that [0, 1] spans the same frequency range as integer diffusion steps.
  angles = (1000.0 * t)[..., None] * freqs
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class Block(nn.Module):
  """Pre-norm residual feed-forward block; adaLN when given a time embedding."""
  width: int
  hidden: int
  ffn: str = 'gelu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h_bw, temb):
    if temb is None:
      y = nn.LayerNorm(dtype=self.dtype)(h_bw)
    else:
      # Zero-initialised modulation: every block starts as the identity-scaled
      # LayerNorm, as in DiT's adaLN-Zero.
      mod = nn.Dense(2 * self.width, kernel_init=nn.initializers.zeros)(nn.silu(temb))
      scale, shift = jnp.split(mod, 2, axis=-1)
      y = nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype)(h_bw)
      y = y * (1 + scale) + shift
    if self.ffn == 'gelu':
      y = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype)(y))
    else:  # SwiGLU: one matmul to `hidden`, gated halves.
      a, b = jnp.split(nn.Dense(self.hidden, dtype=self.dtype)(y), 2, axis=-1)
      y = nn.silu(a) * b
    return h_bw + nn.Dense(self.width, dtype=self.dtype)(y).astype(h_bw.dtype)


class VelocityMLP(nn.Module):
  """Rectified-flow velocity field v(x_t, t) over `dim`-dimensional embeddings."""
  dim: int = 128
  width: int = 768
  depth: int = 12
  hidden: int = 3072
  time_dim: int = 32
  ffn: str = 'gelu'
  cond: str = 'all'  # 'all' blocks, or only the 'first' (reference code's SwiGLU variant).
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_bd, t):
    t = jnp.asarray(t, jnp.float32)
    temb = timestep_embedding(t if t.ndim else t[None], self.time_dim)  # [batch or 1, time_dim]
    temb = nn.Dense(self.width)(temb)
    h = nn.Dense(self.width, dtype=self.dtype)(x_bd).astype(jnp.float32)
    for i in range(self.depth):
      conditioned = self.cond == 'all' or i == 0
      h = Block(self.width, self.hidden, self.ffn, self.dtype)(h, temb if conditioned else None)
    h = nn.LayerNorm()(h)
    return nn.Dense(self.dim, kernel_init=nn.initializers.zeros)(h)


def from_config(cfg):
  """Builds the network from `config.model`."""
  if cfg.ffn not in ('gelu', 'swiglu'):
    raise InputError(f'model.ffn={cfg.ffn!r}: expected "gelu" or "swiglu"')
  if cfg.cond not in ('all', 'first'):
    raise InputError(f'model.cond={cfg.cond!r}: expected "all" or "first"')
  if cfg.dtype not in ('float32', 'bfloat16'):
    raise InputError(f'model.dtype={cfg.dtype!r}: expected "float32" or "bfloat16"')
  return VelocityMLP(dim=cfg.dim, width=cfg.width, depth=cfg.depth, hidden=cfg.hidden,
                     time_dim=cfg.time_dim, ffn=cfg.ffn, cond=cfg.cond,
                     dtype=jnp.dtype(cfg.dtype))


def flops_per_row(cfg):
  """Matmul FLOPs of one forward pass for one row (time conditioning excluded)."""
  ffn_out = cfg.hidden // 2 if cfg.ffn == 'swiglu' else cfg.hidden
  block = 2 * (cfg.width * cfg.hidden + ffn_out * cfg.width)
  return 2 * cfg.dim * cfg.width + cfg.depth * block + 2 * cfg.width * cfg.dim
