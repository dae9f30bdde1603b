"""The encoder, its losses, weights files, training, mining and whitening."""

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfp.audio import augment, fingerprinter, scoring
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT, log_mel
from audio_helpers import music, tiny_training_inputs


def test_encoder_gives_deterministic_unit_fingerprints():
  params = fingerprinter.init_params(jax.random.key(0))
  assert 1_000_000 < fingerprinter.count_params(params) < 3_000_000
  x_bs = jnp.asarray(np.stack([music(1.0, s) for s in range(4)]))
  e = fingerprinter.embed_audio(params, x_bs)
  assert e.shape == (4, fingerprinter.DIM)
  np.testing.assert_allclose(jnp.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(e, fingerprinter.embed_audio(params, x_bs))


@pytest.mark.parametrize('shape', [(2, 64, 94, 1), (3, 7, 12, 5), (1, 2, 3, 4)])
def test_patch_convolution_is_flaxs_strided_same_convolution(shape):
  """Odd and even sizes pad as 'SAME' does; the kernel keeps nn.Conv's layout."""
  k_x, k_init = jax.random.split(jax.random.key(len(shape) + shape[1]))
  x = jax.random.normal(k_x, shape)
  conv = flax.linen.Conv(6, (3, 3), strides=(2, 2), padding='SAME')
  params = conv.init(k_init, x)['params']
  params = {'kernel': params['kernel'], 'bias': jnp.arange(6.0)}
  got = fingerprinter.Conv3x3Stride2(6).apply({'params': params}, x)
  np.testing.assert_allclose(got, conv.apply({'params': params}, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('loss', sorted(fingerprinter.LOSSES))
def test_losses_reward_matching_pairs(loss):
  a = jax.random.normal(jax.random.key(0), (16, 8))
  a /= jnp.linalg.norm(a, axis=1, keepdims=True)
  loss_same, acc_same = fingerprinter.LOSSES[loss](a, a, 0.05)
  loss_rand, _ = fingerprinter.LOSSES[loss](a, jnp.roll(a, 1, axis=0), 0.05)
  assert acc_same == 1.0 and loss_same < 0.1 < loss_rand


def test_query_to_database_loss_never_repels_clean_segments_from_each_other():
  # The pull on the clean segments comes from the distorted copies alone, so it
  # lies in the copies' span; NT-Xent's also comes from the other clean segments.
  a = jax.random.normal(jax.random.key(0), (4, 8))
  a /= jnp.linalg.norm(a, axis=1, keepdims=True)
  p = jax.random.normal(jax.random.key(1), (4, 8)).at[:, 4:].set(0.0)
  outside = lambda loss: jax.grad(lambda a_: loss(a_, p, 0.05)[0])(a)[:, 4:]
  np.testing.assert_allclose(outside(fingerprinter.query_to_database_xent), 0.0, atol=1e-6)
  assert np.abs(outside(fingerprinter.nt_xent)).max() > 1e-3


def test_weights_round_trip_in_float16_barely_moves_fingerprints(tmp_path):
  params = fingerprinter.init_params(jax.random.key(0))
  fingerprinter.save_weights(tmp_path / 'w.npz', params)
  loaded = fingerprinter.load_weights(tmp_path / 'w.npz')
  assert jax.tree.structure(loaded) == jax.tree.structure(params)
  x_bs = jnp.asarray(np.stack([music(1.0, s) for s in range(4)]))
  np.testing.assert_allclose(fingerprinter.embed_audio(loaded, x_bs), fingerprinter.embed_audio(params, x_bs), atol=5e-3)
  fingerprinter.save_weights(tmp_path / 'again.npz', loaded)  # Float16 values survive exactly.
  np.testing.assert_array_equal(fingerprinter.embed_audio(fingerprinter.load_weights(tmp_path / 'again.npz'), x_bs),
                                fingerprinter.embed_audio(loaded, x_bs))


def test_digest_tells_weights_apart_and_is_stable_across_loads(tmp_path):
  params = fingerprinter.init_params(jax.random.key(0))
  fingerprinter.save_weights(tmp_path / 'w.npz', params)
  loaded = fingerprinter.digest(fingerprinter.load_weights(tmp_path / 'w.npz'))
  assert loaded == fingerprinter.digest(fingerprinter.load_weights(tmp_path / 'w.npz'))
  assert loaded != fingerprinter.digest(params)  # float16 rounding moved some weights.
  assert fingerprinter.digest(params) != fingerprinter.digest(fingerprinter.init_params(jax.random.key(1)))


def test_training_resumes_from_its_checkpoint(tmp_path):
  inputs, tiny = tiny_training_inputs()
  logs = []
  fingerprinter.train(*inputs, tmp_path, steps=2, batch=4, ckpt_seconds=0, model=tiny, log=logs.append)
  params, info = fingerprinter.train(*inputs, tmp_path, steps=3, batch=4, ckpt_seconds=0, model=tiny,
                                     log=logs.append)
  assert logs == ['fingerprinter: resuming at step 2'] and info['steps'] == 3


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
  inputs, tiny = tiny_training_inputs()
  init = fingerprinter.init_params(jax.random.key(3), tiny)
  # lr=0 leaves the starting point untouched, so the result shows where training began.
  kept, _ = fingerprinter.train(*inputs, tmp_path / 'a', steps=1, batch=4, lr=0.0, init=init, model=tiny)
  fresh, _ = fingerprinter.train(*inputs, tmp_path / 'b', steps=1, batch=4, lr=0.0, model=tiny)
  jax.tree.map(np.testing.assert_array_equal, kept, init)
  assert not np.allclose(fresh['Dense_0']['kernel'], init['Dense_0']['kernel'])


@pytest.mark.parametrize('per_track', [2, 4, 8])
def test_pair_starts_group_moments_of_one_track_with_their_next_window(per_track):
  lo_k = jnp.array([0, 100_000, 300_000])
  hi_k = jnp.array([100_000, 300_000, 320_000])
  anchor_b, positive_b = fingerprinter.sample_pair_starts(jax.random.key(0), lo_k, hi_k, 64, per_track)
  anchor_gp = np.asarray(anchor_b).reshape(64 // per_track, per_track)
  half = per_track // 2
  np.testing.assert_array_equal(anchor_gp[:, half:], anchor_gp[:, :half] + HOP)
  track_gp = np.searchsorted(np.asarray(lo_k), anchor_gp, side='right') - 1
  assert (track_gp == track_gp[:, :1]).all()  # One track per group...
  lo, hi = np.asarray(lo_k)[track_gp], np.asarray(hi_k)[track_gp]
  assert (anchor_gp - augment.RIR_LEN - augment.MAX_OFFSET >= lo).all()  # ...with room for a room's tail
  assert (anchor_gp + SEGMENT + augment.MAX_OFFSET <= hi).all()        # and the query's offset.
  assert np.abs(np.asarray(positive_b - anchor_b)).max() <= augment.MAX_OFFSET


def test_mining_windows_lie_on_each_tracks_grid_with_room_for_the_pair_margins():
  bounds = np.array([[0, 20 * SAMPLE_RATE], [20 * SAMPLE_RATE + 123, 31 * SAMPLE_RATE]])
  start_n, track_n = fingerprinter.mining_windows(bounds)
  lo, hi = bounds[track_n, 0], bounds[track_n, 1]
  assert ((start_n - lo) % HOP == 0).all()
  assert (start_n - augment.RIR_LEN - augment.MAX_OFFSET >= lo).all()
  assert (start_n + HOP + SEGMENT + augment.MAX_OFFSET <= hi).all()
  # Every grid window that fits is a candidate: none missing at either end.
  for k, (a, b) in enumerate(bounds):
    starts = start_n[track_n == k]
    assert starts[0] - HOP - augment.RIR_LEN - augment.MAX_OFFSET < a
    assert starts[-1] + 2 * HOP + SEGMENT + augment.MAX_OFFSET > b


def _two_tracks_with_a_loop():
  """Two 20 s tracks; the first repeats its seconds 3-5 exactly at seconds 13-15."""
  a, b = music(20.0, 5), music(20.0, 6)
  a[13 * SAMPLE_RATE:15 * SAMPLE_RATE] = a[3 * SAMPLE_RATE:5 * SAMPLE_RATE]
  return np.concatenate([a, b]), np.array([[0, 20 * SAMPLE_RATE], [20 * SAMPLE_RATE, 40 * SAMPLE_RATE]])


def test_mined_confusers_are_the_most_alike_windows_of_the_track_apart_from_loops():
  audio, bounds = _two_tracks_with_a_loop()
  start_n, track_n = fingerprinter.mining_windows(bounds)
  tiny = fingerprinter.Encoder(channels=(4, 8), hidden=16)
  params = fingerprinter.init_params(jax.random.key(0), tiny)
  confusers_nk = fingerprinter.mine_confusers(params, audio, start_n, track_n, 3, tiny)
  assert confusers_nk.shape == (start_n.size, 3)
  pos_n = (start_n - bounds[track_n, 0]) // HOP  # Window number within its track.
  assert (track_n[confusers_nk] == track_n[:, None]).all()
  group_ngk = np.concatenate([np.arange(start_n.size)[:, None], confusers_nk], axis=1)
  gap_nkk = np.abs(pos_n[group_ngk][:, :, None] - pos_n[group_ngk][:, None, :])
  assert (gap_nkk + 100 * np.eye(4, dtype=int) >= 3).all()  # No two moments share audio.
  # Windows 6-8 (3-5 s) recur as windows 26-28 (13-15 s): never each other's confusers.
  twin = {}
  for p in (6, 7, 8):
    i, j = (np.flatnonzero((track_n == 0) & (pos_n == q))[0] for q in (p, p + 20))
    twin[i], twin[j] = j, i
    assert j not in confusers_nk[i] and i not in confusers_nk[j]
  # The first pick is the best-scoring window of the track that is far enough away.
  e_nd = np.asarray(fingerprinter.Encoder.apply(tiny, {'params': params}, log_mel(
      jnp.asarray(audio[start_n[:, None] + np.arange(SEGMENT)]))))
  for i in range(start_n.size):
    ok = (track_n == track_n[i]) & (np.abs(pos_n - pos_n[i]) >= 3)
    ok[twin.get(i, i)] = False
    scores = np.where(ok, e_nd @ e_nd[i], -np.inf)
    assert scores[confusers_nk[i, 0]] >= scores.max() - 1e-5


def test_mined_groups_are_a_window_its_confusers_and_their_next_windows():
  start_n = jnp.arange(10, dtype=jnp.int32) * HOP + 10 * HOP
  confusers_nk = jnp.asarray(np.random.default_rng(0).integers(0, 10, (10, 3)), jnp.int32)
  anchor_b, positive_b = fingerprinter.sample_mined_starts(jax.random.key(0), start_n, confusers_nk, 32, 8)
  anchor_gp = np.asarray(anchor_b).reshape(4, 8)
  seed_g = (anchor_gp[:, 0] - 10 * HOP) // HOP
  np.testing.assert_array_equal(anchor_gp[:, 1:4], np.asarray(start_n)[np.asarray(confusers_nk)[seed_g]])
  np.testing.assert_array_equal(anchor_gp[:, 4:], anchor_gp[:, :4] + HOP)
  assert np.abs(np.asarray(positive_b - anchor_b)).max() <= augment.MAX_OFFSET


def test_mined_training_resumes_to_the_same_weights(tmp_path):
  audio, bounds = _two_tracks_with_a_loop()
  noise = np.random.default_rng(0).normal(size=2 * SAMPLE_RATE).astype(np.float32)
  inputs = (jax.random.key(0), audio, bounds, noise, augment.room_impulse_responses(jax.random.key(0), 4))
  tiny = fingerprinter.Encoder(channels=(4, 8), hidden=16)
  common = dict(batch=8, per_track=8, ckpt_seconds=0, model=tiny, mine_every=2, log=lambda m: None)
  straight, _ = fingerprinter.train(*inputs, tmp_path / 'a', steps=5, **common)
  for steps in (2, 3, 5):  # Stops on and between re-mining steps.
    resumed, _ = fingerprinter.train(*inputs, tmp_path / 'b', steps=steps, **common)
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)


def test_whitening_makes_the_distortion_scatter_round_and_folds_into_the_last_layer():
  tiny = fingerprinter.Encoder(channels=(4, 8), hidden=16, dim=8, normalise=False)
  params = fingerprinter.init_params(jax.random.key(0), tiny)
  rng = np.random.default_rng(0)
  x_bs = np.stack([music(1.0, seed) for seed in range(300)])
  noisy_bs = x_bs + 0.05 * rng.normal(size=x_bs.shape).astype(np.float32)
  z = lambda p, a: np.asarray(tiny.apply({'params': p}, log_mel(a)), np.float64)
  rows_nsd = np.stack([z(params, x_bs), z(params, 0.5 * x_bs)], axis=1)  # Two "shifts".
  white = fingerprinter.whiten_last_layer(params, rows_nsd, z(params, noisy_bs), np.arange(300), reg=0.0)
  row_nd = np.stack([z(white, x_bs), z(white, 0.5 * x_bs)], axis=1).mean(axis=1)
  diff_nd = z(white, noisy_bs) - row_nd
  scatter_dd = diff_nd.T @ diff_nd / len(diff_nd)
  np.testing.assert_allclose(scatter_dd / scatter_dd.diagonal().mean(), np.eye(8), atol=1e-3)
  np.testing.assert_allclose(row_nd.mean(axis=0), 0.0, atol=1e-3)  # Centred on the rows' mean.
  for name in params:
    if name != 'Dense_1':
      jax.tree.map(np.testing.assert_array_equal, white[name], params[name])


def test_whitening_helps_when_distortion_moves_some_directions_much_more():
  # Identity last layer: the fold acts on these 16-d vectors directly.
  identity = {'Dense_1': {'kernel': jnp.eye(16), 'bias': jnp.zeros(16)}}
  rng = np.random.default_rng(0)
  rows_nd = rng.normal(size=(500, 16)) * np.r_[np.full(4, 3.0), np.ones(12)]
  scale_d = np.r_[np.full(4, 4.0), np.full(12, 0.3)]  # Noise swamps the first four directions.
  truth_q = rng.integers(0, 500, 4000)
  queries_qd = rows_nd[truth_q] + rng.normal(size=(4000, 16)) * scale_d
  white = fingerprinter.whiten_last_layer(identity, rows_nd[:, None], queries_qd[:2000], truth_q[:2000])
  w_dd, b_d = np.asarray(white['Dense_1']['kernel']), np.asarray(white['Dense_1']['bias'])
  unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
  tracks = np.zeros(500, int)
  raw = scoring.top1_rates(unit(queries_qd[2000:]), truth_q[2000:], unit(rows_nd), tracks)['hr1']
  whitened = scoring.top1_rates(unit(queries_qd[2000:] @ w_dd + b_d), truth_q[2000:],
                              unit(rows_nd @ w_dd + b_d), tracks)['hr1']
  assert whitened > raw + 0.1, (raw, whitened)


def test_widened_encoder_computes_the_same_fingerprints_with_twice_the_channels():
  params = fingerprinter.init_params(jax.random.key(0))
  wide = fingerprinter.widen(params, jax.random.key(1), noise=0.0)
  assert fingerprinter.encoder_for(params) == fingerprinter.Encoder()
  assert fingerprinter.encoder_for(wide).channels == fingerprinter.WIDE_CHANNELS
  x_bs = np.stack([music(1.0, seed) for seed in range(4)])
  np.testing.assert_allclose(fingerprinter.embed_audio(wide, x_bs), fingerprinter.embed_audio(params, x_bs),
                             atol=1e-5)
  jittered = fingerprinter.widen(params, jax.random.key(1))
  moved = np.abs(fingerprinter.embed_audio(jittered, x_bs) - fingerprinter.embed_audio(params, x_bs)).max()
  assert 0 < moved < 0.1  # The symmetry is broken, the function barely moved.


def test_a_widened_encoder_fine_tunes(tmp_path):
  inputs, tiny = tiny_training_inputs()
  wide = fingerprinter.widen(fingerprinter.init_params(jax.random.key(3), tiny), jax.random.key(4))
  model = fingerprinter.encoder_for(wide)
  assert model.channels == (8, 16)
  params, _ = fingerprinter.train(*inputs, tmp_path, steps=2, batch=4, init=wide, model=model)
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, wide)
  assert not np.allclose(params['Conv_1']['kernel'], wide['Conv_1']['kernel'])
