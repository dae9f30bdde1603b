"""NAFP-style fingerprinter: conv encoder on 1 s log-mel, 128-d unit vectors, NT-Xent.

Training pairs a clean 1 s segment (what the database stores) with a distorted,
time-shifted copy (what a microphone would hear); every other segment in the
batch is a negative.
"""

import hashlib
import os
import pathlib
import time
from typing import Callable

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rfp.audio import augment
from rfp.audio.features import HOP, N_FRAMES, N_MELS, SEGMENT, log_mel

DIM = 128
CHANNELS = (16, 32, 64, 128, 256)
HIDDEN = 1024


def conv3x3_stride2(h_bhwc, kernel_33io, bias_o):
  """A 3x3, stride-2, 'SAME'-padded convolution as one matmul over gathered patches.

  The same function as `nn.Conv(o, (3, 3), strides=2, padding='SAME')` with the
  same parameters, and on CPUs the same numbers; its gradients run about twice
  as fast, because XLA's CPU convolutions use a fraction of the matmul rate on
  maps with few channels.
  """
  _, h, w, c = h_bhwc.shape
  oh, ow = -(-h // 2), -(-w // 2)
  pad_h, pad_w = max(2 * oh + 1 - h, 0), max(2 * ow + 1 - w, 0)
  x = jnp.pad(h_bhwc, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2),
                       (0, 0)))
  # Patch features in the kernel's (row, column, channel) order.
  patches_bhwk = jnp.concatenate([x[:, i:i + 2 * oh - 1:2, j:j + 2 * ow - 1:2]
                                  for i in range(3) for j in range(3)], axis=-1)
  return patches_bhwk @ kernel_33io.reshape(9 * c, -1) + bias_o


class Conv3x3Stride2(nn.Module):
  """`conv3x3_stride2` with `nn.Conv`'s parameters and initialisers."""
  features: int

  @nn.compact
  def __call__(self, h_bhwc):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, h_bhwc.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv3x3_stride2(h_bhwc, kernel, bias)


class Encoder(nn.Module):
  """Strided 3x3 convs halve mel and time each layer; a 2-layer head maps to DIM.

  The convs stop at a 2x3 map, where a dense layer sees the whole context.
  `conv(features, name=...)` makes each convolution; any implementation of
  the same function (e.g. flax's `nn.Conv`) loads the same weights.
  """
  channels: tuple = CHANNELS
  hidden: int = HIDDEN
  dim: int = DIM
  conv: Callable[..., nn.Module] = Conv3x3Stride2

  @nn.compact
  def __call__(self, mel_bmf):
    h = mel_bmf[..., None]
    for i, c in enumerate(self.channels):
      h = self.conv(c, name=f'Conv_{i}')(h)  # nn.Conv's names: shipped weights load.
      h = nn.elu(nn.LayerNorm()(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.elu(nn.Dense(self.hidden)(h))
    e_bd = nn.Dense(self.dim)(h)
    return e_bd / jnp.linalg.norm(e_bd, axis=-1, keepdims=True)


def matmul_shapes(channels=CHANNELS, hidden=HIDDEN, dim=DIM):
  """The encoder's matmuls per example as (rows, inputs, outputs): each conv is
  one row per output position; then the two dense layers."""
  shapes, h, w, c = [], N_MELS, N_FRAMES, 1
  for out in channels:
    h, w = -(-h // 2), -(-w // 2)
    shapes.append((h * w, 9 * c, out))
    c = out
  return shapes + [(1, h * w * c, hidden), (1, hidden, dim)]


def flops_per_example(channels=CHANNELS, hidden=HIDDEN, dim=DIM):
  """Forward multiply-add FLOPs of the encoder for one 1 s input (log-mel excluded)."""
  return sum(2 * r * i * o for r, i, o in matmul_shapes(channels, hidden, dim))


@jax.jit
def embed_audio(params, x_bs):
  """[B, SEGMENT] waveforms -> [B, DIM] unit fingerprints of the default Encoder."""
  return Encoder().apply({'params': params}, log_mel(x_bs))


def nt_xent(a_bd, p_bd, temperature):
  """SimCLR's loss over 2B embeddings: each one's positive is its pair partner.

  Also returns in-batch top-1 accuracy, a cheap live proxy for retrieval.
  """
  b = a_bd.shape[0]
  z_nd = jnp.concatenate([a_bd, p_bd])
  logits_nn = z_nd @ z_nd.T / temperature
  logits_nn = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, logits_nn)
  partner_n = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_nn, partner_n).mean()
  accuracy = jnp.mean(jnp.argmax(logits_nn, axis=1) == partner_n)
  return loss, accuracy


def sample_pair_starts(key, track_lo_k, track_hi_k, batch, per_track=4):
  """Anchor starts with room for context and offset in-track, and their positives' starts.

  Anchors come in groups of `per_track` from one track: two random moments, each
  with its neighbour one database hop later. Queries fail by matching another
  moment of the right track, and random batches almost never hold such negatives.
  """
  margin_lo = augment.RIR_LEN + augment.MAX_OFFSET
  margin_hi = HOP + SEGMENT + augment.MAX_OFFSET
  valid_k = jnp.maximum(track_hi_k - track_lo_k - margin_lo - margin_hi, 1)
  groups = batch // per_track
  k_track, k_pos, k_offset = jax.random.split(key, 3)
  track_g = jax.random.categorical(k_track, jnp.log(valid_k.astype(jnp.float32)), shape=(groups,))
  pos_gm = jnp.floor(jax.random.uniform(k_pos, (groups, per_track // 2)) * valid_k[track_g, None])
  first_gm = track_lo_k[track_g, None] + margin_lo + pos_gm.astype(jnp.int32)
  anchor_b = jnp.concatenate([first_gm, first_gm + HOP], axis=1).reshape(batch)
  offset_b = jax.random.randint(k_offset, (batch,), -augment.MAX_OFFSET, augment.MAX_OFFSET + 1)
  return anchor_b, anchor_b + offset_b


def make_train_step(optimizer, temperature, batch, per_track=4, model=Encoder()):
  """One jitted step: sample pairs, distort positives, NT-Xent, update."""

  @jax.jit
  def step(params, opt_state, key, audio, track_lo_k, track_hi_k, noise, rirs_nl):
    k_starts, k_distort = jax.random.split(key)
    anchor_b, positive_b = sample_pair_starts(k_starts, track_lo_k, track_hi_k, batch, per_track)
    clean_bs = augment.crop_rows(audio, anchor_b, SEGMENT)
    context_bt = augment.crop_rows(audio, positive_b - augment.RIR_LEN, augment.RIR_LEN + SEGMENT)
    noisy_bs = augment.distort(k_distort, context_bt, noise, rirs_nl)
    mel_bmf = log_mel(jnp.concatenate([clean_bs, noisy_bs]))

    def loss_fn(p):
      e_nd = model.apply({'params': p}, mel_bmf)
      return nt_xent(e_nd[:batch], e_nd[batch:], temperature)

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, accuracy

  return step


def make_optimizer(steps, lr=5e-4, warmup=200):
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), lr * 0.02)
  return optax.adamw(schedule, weight_decay=1e-4)


def init_params(key, model=Encoder()):
  # Jitted: run eagerly, each conv's initialiser compiles on its own and takes seconds.
  return jax.jit(model.init)(key, jnp.zeros((1, N_MELS, N_FRAMES)))['params']


def _save_atomic(path, data):
  tmp = path.with_suffix('.tmp')
  tmp.write_bytes(data)
  os.replace(tmp, path)


def train(key, audio, track_bounds_k2, noise, rirs_nl, ckpt_dir, steps, batch=128,
          per_track=4, temperature=0.05, lr=5e-4, ckpt_every=100, init=None, model=Encoder(),
          log=print):
  """Trains (or resumes from `ckpt_dir`) for `steps` total steps; returns params.

  `audio` is all training tracks concatenated, `track_bounds_k2` their [start, end)
  sample ranges. `init` (params) fine-tunes instead of starting from random
  weights. A checkpoint is written every `ckpt_every` steps, so a killed run
  loses at most that much work.
  """
  ckpt_dir = pathlib.Path(ckpt_dir)
  ckpt_dir.mkdir(parents=True, exist_ok=True)
  ckpt = ckpt_dir / 'state.msgpack'
  k_init, k_steps = jax.random.split(key)
  optimizer = make_optimizer(steps, lr)
  params = init_params(k_init, model) if init is None else init
  state = {'params': params, 'opt_state': optimizer.init(params), 'step': 0, 'seconds': 0.0}
  if ckpt.exists():
    state = flax.serialization.from_bytes(state, ckpt.read_bytes())
    log(f'fingerprinter: resuming at step {int(state["step"])}')
  step_fn = make_train_step(optimizer, temperature, batch, per_track, model)
  args = [jnp.asarray(a) for a in
          (audio, track_bounds_k2[:, 0], track_bounds_k2[:, 1], noise, rirs_nl)]
  params, opt_state = state['params'], state['opt_state']
  start, seconds = int(state['step']), float(state['seconds'])
  bar = tqdm(range(start, steps), initial=start, total=steps, desc='fingerprinter', mininterval=5)
  t0 = time.time()
  for i in bar:
    params, opt_state, loss, accuracy = step_fn(params, opt_state, jax.random.fold_in(k_steps, i), *args)
    if (i + 1) % 10 == 0:
      bar.set_postfix(loss=f'{float(loss):.3f}', top1=f'{float(accuracy):.3f}', refresh=False)
    if (i + 1) % ckpt_every == 0 or i + 1 == steps:
      state = {'params': params, 'opt_state': opt_state, 'step': i + 1,
               'seconds': seconds + time.time() - t0}
      _save_atomic(ckpt, flax.serialization.to_bytes(state))
  return params, {'steps': steps, 'train_seconds': round(float(state['seconds']), 1)}


def save_weights(path, params):
  """Flat .npz of float16 params: half the size, and fingerprints move by ~1e-3 at most.

  Everything shipped is embedded with the weights as loaded back from this file.
  """
  flat = flax.traverse_util.flatten_dict(params, sep='/')
  np.savez(path, **{k: np.asarray(v, np.float16) for k, v in flat.items()})


def load_weights(path):
  with np.load(path) as f:
    return flax.traverse_util.unflatten_dict(
        {k: jnp.asarray(f[k], jnp.float32) for k in f.files}, sep='/')


def digest(params):
  """Short hash of the weights' values, to key anything computed with them."""
  h = hashlib.sha1()
  for path, leaf in sorted(flax.traverse_util.flatten_dict(params, sep='/').items()):
    h.update(path.encode())
    h.update(np.ascontiguousarray(leaf, np.float32).tobytes())
  return h.hexdigest()[:12]


def count_params(params):
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
