"""NAFP-style fingerprinter: conv encoder on 1 s log-mel, 128-d unit vectors, NT-Xent.

Training pairs a clean 1 s segment (what the database stores) with a distorted,
time-shifted copy (what a microphone would hear); every other segment in the
batch is a negative. Fine-tuning can instead score each copy against the clean
segments only (`query_to_database_xent`), as retrieval does.

One model with everything its training needs (encoder, losses, pair sampling,
hard-negative mining, the loop, weight files): longer than ~300 lines because
each piece is only used by the others; the build's stages are elsewhere.
"""

import functools
import hashlib
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

from rfp import files, optimizer as optimizer_lib
from rfp.audio import augment
from rfp.audio.features import HOP, LOOP_CORR, N_FRAMES, N_MELS, SEGMENT, log_mel, mel_correlations

DIM = 128
CHANNELS = (16, 32, 64, 128, 256)
WIDE_CHANNELS = tuple(2 * c for c in CHANNELS)  # What `widen` makes of CHANNELS.
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
  `normalise=False` returns the last layer's outputs before the L2 norm.
  """
  channels: tuple = CHANNELS
  hidden: int = HIDDEN
  dim: int = DIM
  conv: Callable[..., nn.Module] = Conv3x3Stride2
  normalise: bool = True

  @nn.compact
  def __call__(self, mel_bmf):
    h = mel_bmf[..., None]
    for i, c in enumerate(self.channels):
      h = self.conv(c, name=f'Conv_{i}')(h)  # nn.Conv's names: shipped weights load.
      h = nn.elu(nn.LayerNorm()(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.elu(nn.Dense(self.hidden)(h))
    z_bd = nn.Dense(self.dim)(h)
    if not self.normalise:
      return z_bd
    return z_bd / jnp.linalg.norm(z_bd, axis=-1, keepdims=True)


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


def encoder_for(params, **kwargs):
  """The Encoder whose widths these weights have (the default one, or e.g. `widen`'s)."""
  n_convs = sum(name.startswith('Conv_') for name in params)
  return Encoder(channels=tuple(params[f'Conv_{i}']['kernel'].shape[-1] for i in range(n_convs)),
                 hidden=params['Dense_0']['kernel'].shape[1],
                 dim=params['Dense_1']['kernel'].shape[1], **kwargs)


@functools.partial(jax.jit, static_argnames='normalise')
def embed_audio(params, x_bs, normalise=True):
  """[B, SEGMENT] waveforms -> [B, DIM] unit fingerprints of the Encoder these weights
  fit (with `normalise=False`, the last layer's outputs before the L2 norm)."""
  return encoder_for(params, normalise=normalise).apply({'params': params}, log_mel(x_bs))


def widen(params, key, noise=0.02):
  """Net2Wider: the same encoder with every conv twice as wide, computing the same
  function up to `noise` (relative, on the copied weights).

  Each channel is duplicated; the layer after it splits its weights between the two
  copies. LayerNorm sees each value twice, so its mean and variance, and the
  function, are unchanged. `noise` breaks the symmetry so fine-tuning can pull
  the copies apart: capacity without losing what training has paid for.
  """
  channels = encoder_for(params).channels
  n_convs = len(channels)
  keys = jax.random.split(key, n_convs + 1)
  jitter = lambda k, w: w * (1 + noise * np.asarray(jax.random.normal(k, w.shape)))
  out = dict(params)
  for i in range(n_convs):
    kernel = np.asarray(params[f'Conv_{i}']['kernel'])  # [3, 3, in, out]
    if i > 0:
      kernel = np.concatenate([kernel, kernel], axis=2) / 2
    out[f'Conv_{i}'] = {'kernel': jnp.asarray(jitter(keys[i], np.concatenate([kernel, kernel], axis=3))),
                        'bias': jnp.tile(params[f'Conv_{i}']['bias'], 2)}
    out[f'LayerNorm_{i}'] = {k: jnp.tile(v, 2) for k, v in params[f'LayerNorm_{i}'].items()}
  # Dense_0 reads the flattened [mel, time, channel] map: split each channel's rows.
  kernel = np.asarray(params['Dense_0']['kernel'])
  kernel = kernel.reshape(-1, channels[-1], kernel.shape[1])
  kernel = jitter(keys[n_convs], np.concatenate([kernel, kernel], axis=1) / 2)
  out['Dense_0'] = {'kernel': jnp.asarray(kernel.reshape(-1, kernel.shape[2])),
                    'bias': params['Dense_0']['bias']}
  return out


# Shrinks the distortion scatter towards a multiple of the identity by this
# fraction of its mean eigenvalue. Chosen on held-out fingerprinter-training
# tracks (0.03-0.3 within 0.2 points of each other; 0 overfits the smallest
# directions).
WHITEN_REG = 0.1


def whiten_last_layer(params, rows_nsd, queries_qd, truth_q, reg=WHITEN_REG):
  """Params whose last layer maps z to (z - mean) @ Sw^-1/2: distortion whitening.

  `rows_nsd` are pre-norm outputs (`normalise=False`) of clean database windows
  at each database shift, `queries_qd` those of distorted, time-shifted
  excerpts and `truth_q` each excerpt's row. Sw, the scatter of an excerpt
  around its row's mean, is what distortion does to a fingerprint; whitening it
  makes directions that noise moves a lot count less in the inner product,
  with the same architecture and cost. Fit it on training audio, rooms and noise.
  """
  row_nd = np.asarray(rows_nsd, np.float64).mean(axis=1)
  diff_qd = np.asarray(queries_qd, np.float64) - row_nd[np.asarray(truth_q)]
  sw_dd = diff_qd.T @ diff_qd / diff_qd.shape[0]
  mean_eig = np.trace(sw_dd) / sw_dd.shape[0]
  vals_d, vecs_dd = np.linalg.eigh(sw_dd + reg * mean_eig * np.eye(sw_dd.shape[0]))
  # Scaled by the mean eigenvalue so the folded weights keep their magnitude (float16).
  w_dd = vecs_dd @ np.diag(np.sqrt(mean_eig / vals_d)) @ vecs_dd.T
  last = params['Dense_1']
  kernel = np.asarray(last['kernel'], np.float64) @ w_dd
  bias = (np.asarray(last['bias'], np.float64) - row_nd.mean(axis=0)) @ w_dd
  return {**params, 'Dense_1': {'kernel': jnp.asarray(kernel, jnp.float32),
                               'bias': jnp.asarray(bias, jnp.float32)}}


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


def query_to_database_xent(a_bd, p_bd, temperature):
  """Each distorted copy's softmax over the batch's clean segments: the direction
  retrieval runs in, a query against database rows.

  Unlike `nt_xent`, clean segments never repel each other directly. A window and
  its next one (0.5 s later) are pushed apart only as far as their distorted
  copies need, so an excerpt midway between them stays near both rather than
  drifting to another moment of the track. For fine-tuning: from the stage-4
  weights (docs/fingerprinter.md), 400 steps raised HR@1 against R 1.2 points more
  than as many `nt_xent` steps.
  """
  logits_bb = p_bd @ a_bd.T / temperature
  target_b = jnp.arange(a_bd.shape[0])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_bb, target_b).mean()
  return loss, jnp.mean(jnp.argmax(logits_bb, axis=1) == target_b)


LOSSES = {'nt-xent': nt_xent, 'query-to-database': query_to_database_xent}


# An anchor needs a room's tail of audio before it (the positive is reverberated),
# and after it its next window and the positive's time offset.
MARGIN_BEFORE = augment.RIR_LEN + augment.MAX_OFFSET
MARGIN_AFTER = HOP + SEGMENT + augment.MAX_OFFSET


def _groups_with_next_windows(key, first_gm, batch):
  """Anchor starts: each group's moments, then each moment's next window; and the
  positives' starts, each offset by up to ±MAX_OFFSET."""
  anchor_b = jnp.concatenate([first_gm, first_gm + HOP], axis=1).reshape(batch)
  offset_b = jax.random.randint(key, (batch,), -augment.MAX_OFFSET, augment.MAX_OFFSET + 1)
  return anchor_b, anchor_b + offset_b


def sample_pair_starts(key, track_lo_k, track_hi_k, batch, per_track=4):
  """Anchor starts with room for context and offset in-track, and their positives' starts.

  Anchors come in groups of `per_track` from one track: two random moments, each
  with its neighbour one database hop later. Queries fail by matching another
  moment of the right track, and random batches almost never hold such negatives.
  """
  valid_k = jnp.maximum(track_hi_k - track_lo_k - MARGIN_BEFORE - MARGIN_AFTER, 1)
  groups = batch // per_track
  k_track, k_pos, k_offset = jax.random.split(key, 3)
  track_g = jax.random.categorical(k_track, jnp.log(valid_k.astype(jnp.float32)), shape=(groups,))
  pos_gm = jnp.floor(jax.random.uniform(k_pos, (groups, per_track // 2)) * valid_k[track_g, None])
  first_gm = track_lo_k[track_g, None] + MARGIN_BEFORE + pos_gm.astype(jnp.int32)
  return _groups_with_next_windows(k_offset, first_gm, batch)


def mining_windows(track_bounds_k2):
  """Database-grid window starts (samples, 0.5 s apart) far enough from each track's
  ends for MARGIN_BEFORE and MARGIN_AFTER, and each one's track; the candidates
  `mine_confusers` ranks."""
  starts, tracks = [], []
  for k, (lo, hi) in enumerate(np.asarray(track_bounds_k2, np.int64)):
    local = np.arange(-(-MARGIN_BEFORE // HOP), (hi - lo - MARGIN_AFTER) // HOP + 1) * HOP
    starts.append(lo + local)
    tracks.append(np.full(local.size, k))
  return np.concatenate(starts).astype(np.int32), np.concatenate(tracks)


def _pick_confusers(sim_nn, gap_ok_nn, n_pick):
  """Greedily the most similar candidates of each row that are `gap_ok` with the row
  and with every one picked before; short rows are padded with the row's best
  remaining candidates, then with itself."""
  n = sim_nn.shape[0]
  picks_nk = np.tile(np.arange(n)[:, None], (1, n_pick))
  order_nn = np.argsort(-sim_nn, axis=1)
  for i in range(n):
    chosen = []
    for j in order_nn[i]:
      if len(chosen) == n_pick or not np.isfinite(sim_nn[i, j]):
        break
      if all(gap_ok_nn[j, c] for c in chosen):
        chosen.append(j)
    if len(chosen) < n_pick:
      chosen += [j for j in order_nn[i] if np.isfinite(sim_nn[i, j]) and j not in chosen]
      chosen = chosen[:n_pick]
    picks_nk[i, :len(chosen)] = chosen
  return picks_nk


@functools.partial(jax.jit, static_argnums=0)
def _mel_and_embedding(model, params, x_bs):
  mel_bmf = log_mel(x_bs)
  return mel_bmf, model.apply({'params': params}, mel_bmf)


def mine_confusers(params, audio, window_start_n, window_track_n, n_pick, model=Encoder(),
                   min_gap=3, max_mel_corr=LOOP_CORR, batch=512):
  """[N, n_pick] indices into `window_start_n`: for each window, the other windows of
  its track that the encoder scores most alike, at least `min_gap` windows from it
  and from each other (so no two anchors share audio).

  These are the moments a query of this window gets confused with. Windows whose
  log-mels correlate above `max_mel_corr` are skipped: those are loops, the same
  audio twice, which no fingerprint can tell apart.
  """
  mel_nmf, e_nd = [], []
  for i in range(0, window_start_n.size, batch):
    idx = np.asarray(window_start_n[i:i + batch])
    x_bs = np.zeros((batch, SEGMENT), np.float32)
    x_bs[:idx.size] = np.asarray(audio)[idx[:, None] + np.arange(SEGMENT)]
    mel, e = _mel_and_embedding(model, params, x_bs)
    mel_nmf.append(np.asarray(mel)[:idx.size])
    e_nd.append(np.asarray(e)[:idx.size])
  mel_nmf, e_nd = np.concatenate(mel_nmf), np.concatenate(e_nd)
  confusers_nk = np.zeros((window_start_n.size, n_pick), np.int32)
  for k in np.unique(window_track_n):
    rows = np.flatnonzero(window_track_n == k)
    pos = np.arange(rows.size)
    gap_ok = np.abs(pos[:, None] - pos[None, :]) >= min_gap
    sim = e_nd[rows] @ e_nd[rows].T
    sim[~gap_ok | (mel_correlations(mel_nmf[rows]) > max_mel_corr)] = -np.inf
    confusers_nk[rows] = rows[_pick_confusers(sim, gap_ok, n_pick)]
  return confusers_nk


def sample_mined_starts(key, window_start_n, confusers_nk, batch, per_track=4):
  """Like `sample_pair_starts`, but each group's moments are a random window and the
  windows of its track the encoder confuses it with (`mine_confusers`)."""
  groups, moments = batch // per_track, per_track // 2
  k_seed, k_offset = jax.random.split(key)
  seed_g = jax.random.randint(k_seed, (groups,), 0, window_start_n.shape[0])
  moment_gm = jnp.concatenate([seed_g[:, None], confusers_nk[seed_g, :moments - 1]], axis=1)
  return _groups_with_next_windows(k_offset, window_start_n[moment_gm], batch)


def make_train_step(optimizer, temperature, batch, per_track=4, model=Encoder(), loss='nt-xent'):
  """One jitted step: sample pairs, distort positives, `LOSSES[loss]`, update.

  `mined` is None (groups of random moments) or (window_start_n, confusers_nk)
  from `mine_confusers` (groups of moments the encoder confuses).
  """

  @jax.jit
  def step(params, opt_state, key, audio, track_lo_k, track_hi_k, noise, rirs_nl, mined=None):
    k_starts, k_distort = jax.random.split(key)
    if mined is None:
      anchor_b, positive_b = sample_pair_starts(k_starts, track_lo_k, track_hi_k, batch, per_track)
    else:
      anchor_b, positive_b = sample_mined_starts(k_starts, *mined, batch, per_track)
    clean_bs = augment.crop_rows(audio, anchor_b, SEGMENT)
    context_bt = augment.crop_rows(audio, positive_b - augment.RIR_LEN, augment.RIR_LEN + SEGMENT)
    noisy_bs = augment.distort(k_distort, context_bt, noise, rirs_nl)
    mel_bmf = log_mel(jnp.concatenate([clean_bs, noisy_bs]))

    def loss_fn(p):
      e_nd = model.apply({'params': p}, mel_bmf)
      return LOSSES[loss](e_nd[:batch], e_nd[batch:], temperature)

    (value, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value, accuracy

  return step


def make_optimizer(steps, lr=5e-4, warmup=200):
  # The full warm-up whatever `steps`: a short run warms up as a long one begins.
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), lr * 0.02)
  return optimizer_lib.make_optimizer(schedule, weight_decay=1e-4)


def init_params(key, model=Encoder()):
  # Jitted: run eagerly, each conv's initialiser compiles on its own and takes seconds.
  return jax.jit(model.init)(key, jnp.zeros((1, N_MELS, N_FRAMES)))['params']


def _save_atomic(path, data):
  with files.atomic_path(path) as tmp:
    tmp.write_bytes(data)


def train(key, audio, track_bounds_k2, noise, rirs_nl, ckpt_dir, steps, batch=128,
          per_track=4, temperature=0.05, lr=5e-4, ckpt_seconds=60.0, init=None, model=Encoder(),
          mine_every=0, loss='nt-xent', log=print):
  """Trains (or resumes from `ckpt_dir`) for `steps` total steps; returns params.

  `audio` is all training tracks concatenated, `track_bounds_k2` their [start, end)
  sample ranges. `init` (params) fine-tunes instead of starting from random
  weights. `mine_every` > 0 builds each group from a moment and the moments of
  its track the current encoder confuses it with, re-mined every that many
  steps (`mine_confusers`; meant for fine-tuning: a random encoder's confusions
  are random). `loss` names one of `LOSSES`. A checkpoint is written every
  `ckpt_seconds` of training and at the end, so a killed run loses at most
  that much work at any step rate (a CPU's second per step or a GPU's
  hundredth); it holds the mined table, so a resumed run trains on the same
  batches.
  """
  ckpt_dir = pathlib.Path(ckpt_dir)
  ckpt_dir.mkdir(parents=True, exist_ok=True)
  ckpt = ckpt_dir / 'state.msgpack'
  k_init, k_steps = jax.random.split(key)
  optimizer = make_optimizer(steps, lr)
  params = init_params(k_init, model) if init is None else init
  window_start_n, window_track_n = mining_windows(track_bounds_k2)
  n_pick = per_track // 2 - 1
  state = {'params': params, 'opt_state': optimizer.init(params), 'step': 0, 'seconds': 0.0,
           'confusers': np.zeros((window_start_n.size if mine_every else 0, n_pick), np.int32),
           'mined_at': -1}
  if ckpt.exists():
    state = flax.serialization.from_bytes(state, ckpt.read_bytes())
    log(f'fingerprinter: resuming at step {int(state["step"])}')
  step_fn = make_train_step(optimizer, temperature, batch, per_track, model, loss)
  args = [jnp.asarray(a) for a in
          (audio, track_bounds_k2[:, 0], track_bounds_k2[:, 1], noise, rirs_nl)]
  params, opt_state = state['params'], state['opt_state']
  confusers_nk, mined_at = state['confusers'], int(state['mined_at'])
  window_start = jnp.asarray(window_start_n)
  mined = (window_start, jnp.asarray(confusers_nk)) if mine_every else None
  start, seconds = int(state['step']), float(state['seconds'])
  bar = tqdm(range(start, steps), initial=start, total=steps, desc='fingerprinter', mininterval=5)
  t0 = saved_at = time.time()
  for i in bar:
    if mine_every and mined_at != i - i % mine_every:
      confusers_nk = mine_confusers(params, audio, window_start_n, window_track_n, n_pick, model)
      mined_at = i
      mined = (window_start, jnp.asarray(confusers_nk))
    params, opt_state, value, accuracy = step_fn(params, opt_state, jax.random.fold_in(k_steps, i),
                                                 *args, mined)
    if (i + 1) % 10 == 0:
      bar.set_postfix(loss=f'{float(value):.3f}', top1=f'{float(accuracy):.3f}', refresh=False)
    if time.time() - saved_at >= ckpt_seconds or i + 1 == steps:
      state = {'params': params, 'opt_state': opt_state, 'step': i + 1,
               'seconds': seconds + time.time() - t0, 'confusers': confusers_nk,
               'mined_at': mined_at}
      _save_atomic(ckpt, flax.serialization.to_bytes(state))
      saved_at = time.time()
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
