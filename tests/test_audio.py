"""The audio pipeline on synthetic audio: features, distortions, encoder, corpus, CLI."""

import io
import json
import os
import shutil
import stat
import zipfile

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

import build_data
from rfp.audio import augment, build, corpus, fingerprinter
from rfp.audio.features import HOP, N_FRAMES, N_MELS, SAMPLE_RATE, SEGMENT, log_mel


def _music(seconds, seed=0, sr=SAMPLE_RATE):
  """A few seconds of random notes with an envelope: enough structure to fingerprint."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  note = (t * 4).astype(int)
  pitch, loudness = rng.uniform(200, 3000, size=(2, note[-1] + 1))
  return (0.3 * np.sin(2 * np.pi * pitch[note] * t) * loudness[note] / 3000).astype(np.float32)


def _wav_bytes(x, sr=SAMPLE_RATE, fmt='WAV'):
  buf = io.BytesIO()
  soundfile.write(buf, x, sr, format=fmt)
  return buf.getvalue()


def test_log_mel_shape_and_gain_invariance():
  x_bs = jnp.asarray(np.stack([_music(1.0, 0), _music(1.0, 1)]))
  mel = log_mel(x_bs)
  assert mel.shape == (2, N_MELS, N_FRAMES)
  np.testing.assert_allclose(log_mel(0.05 * x_bs), mel, atol=1e-3)
  assert float(jnp.abs(mel[0] - mel[1]).mean()) > 0.05  # Different audio, different features.


def test_rirs_are_deterministic_unit_norm_with_the_asked_direct_to_reverberant_ratio():
  rirs = augment.room_impulse_responses(jax.random.key(0), 8, drr_db_range=(6.0, 6.0))
  assert rirs.shape == (8, augment.RIR_LEN)
  np.testing.assert_allclose(jnp.linalg.norm(rirs, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(rirs, augment.room_impulse_responses(jax.random.key(0), 8, drr_db_range=(6.0, 6.0)))
  assert not np.allclose(rirs, augment.room_impulse_responses(jax.random.key(1), 8, drr_db_range=(6.0, 6.0)))
  drr_db = 10 * np.log10(rirs[:, 0] ** 2 / jnp.sum(rirs[:, 1:] ** 2, axis=1))
  np.testing.assert_allclose(drr_db, 6.0, atol=1e-3)


def test_reverberate_is_causal_convolution():
  x_bt = jnp.asarray(_music(0.5)[None])
  delay = jnp.zeros((1, 64)).at[0, 10].set(1.0)
  np.testing.assert_allclose(augment.reverberate(x_bt, delay)[0, 10:], x_bt[0, :-10], atol=1e-5)
  np.testing.assert_allclose(augment.reverberate(x_bt, delay)[0, :10], 0.0, atol=1e-5)


@pytest.mark.parametrize('snr_db', [0.0, 3.0, 10.0])
def test_mix_at_snr_gives_the_asked_snr(snr_db):
  x_bt = jnp.asarray(np.stack([_music(1.0, 0), 0.01 * _music(1.0, 1)]))
  noise_bt = jax.random.normal(jax.random.key(0), x_bt.shape) * jnp.array([[3.0], [0.2]])
  y_bt = augment.mix_at_snr(x_bt, noise_bt, jnp.full((2,), snr_db))
  measured = 10 * np.log10(jnp.mean(x_bt**2, axis=1) / jnp.mean((y_bt - x_bt) ** 2, axis=1))
  np.testing.assert_allclose(measured, snr_db, atol=1e-3)


def test_distort_keeps_length_is_deterministic_and_hits_the_snr():
  x_bt = jnp.asarray(np.stack([_music(1.5, s) for s in range(3)]))
  noise = jax.random.normal(jax.random.key(5), (3 * SAMPLE_RATE,))
  rirs = augment.room_impulse_responses(jax.random.key(0), 4)
  y = augment.distort(jax.random.key(1), x_bt, noise, rirs, snr_db_range=(5.0, 5.0))
  assert y.shape == (3, SEGMENT)
  np.testing.assert_array_equal(y, augment.distort(jax.random.key(1), x_bt, noise, rirs, snr_db_range=(5.0, 5.0)))
  assert not np.allclose(y, augment.distort(jax.random.key(2), x_bt, noise, rirs, snr_db_range=(5.0, 5.0)))
  # With a single dry room the clean part is known exactly, so the added noise can be measured.
  dry = jnp.zeros((1, augment.RIR_LEN)).at[0, 0].set(1.0)
  y_dry = augment.distort(jax.random.key(1), x_bt, noise, dry, snr_db_range=(5.0, 5.0))
  clean = x_bt[:, -SEGMENT:]
  snr = 10 * np.log10(jnp.mean(clean**2, axis=1) / jnp.mean((y_dry - clean) ** 2, axis=1))
  np.testing.assert_allclose(snr, 5.0, atol=1e-3)


def test_encoder_gives_deterministic_unit_fingerprints():
  params = fingerprinter.init_params(jax.random.key(0))
  assert 1_000_000 < fingerprinter.count_params(params) < 3_000_000
  x_bs = jnp.asarray(np.stack([_music(1.0, s) for s in range(4)]))
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
  x_bs = jnp.asarray(np.stack([_music(1.0, s) for s in range(4)]))
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


def _tiny_training_inputs():
  """(key, audio, track bounds, noise, rooms) of two 4 s tracks, and a tiny encoder."""
  audio = np.concatenate([_music(4.0, 0), _music(4.0, 1)])
  bounds = np.array([[0, 4 * SAMPLE_RATE], [4 * SAMPLE_RATE, 8 * SAMPLE_RATE]])
  noise = np.random.default_rng(0).normal(size=2 * SAMPLE_RATE).astype(np.float32)
  rirs = augment.room_impulse_responses(jax.random.key(0), 4)
  return (jax.random.key(0), audio, bounds, noise, rirs), fingerprinter.Encoder(channels=(4, 8), hidden=16)


def test_training_resumes_from_its_checkpoint(tmp_path):
  inputs, tiny = _tiny_training_inputs()
  logs = []
  fingerprinter.train(*inputs, tmp_path, steps=2, batch=4, ckpt_seconds=0, model=tiny, log=logs.append)
  params, info = fingerprinter.train(*inputs, tmp_path, steps=3, batch=4, ckpt_seconds=0, model=tiny,
                                     log=logs.append)
  assert logs == ['fingerprinter: resuming at step 2'] and info['steps'] == 3


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
  inputs, tiny = _tiny_training_inputs()
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
  a, b = _music(20.0, 5), _music(20.0, 6)
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


def test_windows_are_one_second_at_half_second_hop():
  x = np.arange(int(3.7 * SAMPLE_RATE), dtype=np.float32)
  w = build.windows(x)
  assert w.shape == (build.n_windows(x.size), SEGMENT) == (6, SEGMENT)
  np.testing.assert_array_equal(w[:, 0], np.arange(6) * HOP)


def test_shifted_windows_move_by_the_shift_and_stop_at_the_signal_ends():
  x = np.arange(int(3.7 * SAMPLE_RATE), dtype=np.float32)
  early, late = build.windows(x, shift=-1000), build.windows(x, shift=1000)
  assert early.shape == late.shape == build.windows(x).shape
  np.testing.assert_array_equal(early[:, 0], np.maximum(np.arange(6) * HOP - 1000, 0))
  np.testing.assert_array_equal(late[:, 0], np.minimum(np.arange(6) * HOP + 1000, x.size - SEGMENT))
  np.testing.assert_array_equal(late[:, 1:] - late[:, :-1], 1.0)  # Still contiguous audio.


def test_database_rows_are_the_normalised_mean_over_shifts_of_each_tracks_own_windows():
  params = fingerprinter.init_params(jax.random.key(0))
  x = _music(4.0)
  f_nsd = build.window_fingerprints(params, [x])
  assert f_nsd.shape == (build.n_windows(x.size), len(build.DATABASE_SHIFTS), fingerprinter.DIM)
  for i, s in enumerate(build.DATABASE_SHIFTS):
    np.testing.assert_array_equal(f_nsd[:, i], build.embed_windows(params, build.windows(x, shift=s)))
  mean_nd = f_nsd.mean(axis=1)
  np.testing.assert_allclose(build.database_rows(f_nsd),
                             mean_nd / np.linalg.norm(mean_nd, axis=1, keepdims=True), atol=1e-5)
  # Shifted windows are other audio: a row is not its offset-0 fingerprint.
  assert np.abs(build.database_rows(f_nsd) - f_nsd[:, build.DATABASE_SHIFTS.index(0)]).max() > 1e-3
  pre_nsd = build.window_fingerprints(params, [x], normalise=False)
  np.testing.assert_allclose(pre_nsd / np.linalg.norm(pre_nsd, axis=-1, keepdims=True), f_nsd, atol=1e-5)
  # Tracks embedded in one group or one by one: the same fingerprints, none from a window across both.
  y = _music(3.0, seed=1)
  together = build.window_fingerprints(params, iter([x, y]))
  apart = build.window_fingerprints(params, [x, y], group_rows=1)
  np.testing.assert_allclose(together, apart, atol=1e-6)
  np.testing.assert_allclose(together, np.concatenate([f_nsd, build.window_fingerprints(params, [y])]), atol=1e-6)


def test_hit_rate_counts_distractors_that_outscore_the_truth():
  reference = np.eye(4, dtype=np.float32)
  queries = np.array([[1, 0.1, 0, 0], [0, 0, 1, 0]], np.float32)
  assert build.hit_rate_at_1(queries, np.array([0, 2]), reference) == 1.0
  assert build.hit_rate_at_1(queries, np.array([0, 3]), reference) == 0.5
  distractor = np.array([[0, 0, 1, 0]], np.float32) * 1.01
  assert build.hit_rate_at_1(queries, np.array([0, 2]), reference, distractor) == 0.5


def test_load_decodes_and_resamples_wav_and_ogg():
  x = _music(2.0, sr=16000)
  for fmt in ('WAV', 'OGG'):
    y = corpus.load(_wav_bytes(x, 16000, fmt), f'song.{fmt.lower()}')
    assert y.dtype == np.float32 and abs(y.size - 2 * SAMPLE_RATE) <= 0.02 * SAMPLE_RATE  # Codec padding.
    # Notes sit below 4 kHz, so resampling to 8 kHz keeps their energy.
    np.testing.assert_allclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(x**2)), rtol=0.1)


def _tracker_module():
  """A 4-channel ProTracker module: one pattern of 64 rows whose first channel
  plays a square-wave sample at C-3 on every fourth row (7.68 s at speed 6, 125 BPM)."""
  sample = np.tile(np.r_[np.full(16, 60), np.full(16, -60)].astype(np.int8), 64)
  header = b'test module'.ljust(20, b'\0')
  header += b'square'.ljust(22, b'\0') + (sample.size // 2).to_bytes(2, 'big') + bytes([0, 64])
  header += (0).to_bytes(2, 'big') + (sample.size // 2).to_bytes(2, 'big')  # Loops.
  header += (b'\0' * 22 + bytes([0, 0, 0, 0]) + bytes([0, 0, 0, 1])) * 30
  header += bytes([1, 127]) + bytes(128) + b'M.K.'
  pattern = bytearray(64 * 4 * 4)  # [row, channel, 4 bytes]
  for row in range(0, 64, 4):
    pattern[row * 16:row * 16 + 4] = bytes([0x01, 0xAC, 0x10, 0x00])  # Sample 1, period 428.
  return header + bytes(pattern) + sample.tobytes()


@pytest.mark.skipif(not shutil.which('ffmpeg'), reason='tracker modules decode through ffmpeg')
def test_load_renders_tracker_modules():
  y = corpus.load(_tracker_module(), 'pkg:music/song.mod')
  assert y is not None and 7.6 < y.size / SAMPLE_RATE < 8.0  # 7.68 s and a release tail.
  assert np.sqrt(np.mean(y**2)) > 100 * corpus.SILENCE_RMS


def test_silent_and_unreadable_files_are_skipped_with_a_warning_naming_them():
  with pytest.warns(UserWarning, match='silent.*quiet.wav'):
    assert corpus.load(_wav_bytes(np.zeros(SAMPLE_RATE, np.float32)), 'quiet.wav') is None
  with pytest.warns(UserWarning, match='unreadable.*broken.ogg'):
    assert corpus.load(b'OggS this is not audio', 'broken.ogg') is None


def test_find_sources_looks_inside_archives_and_filters_by_path(tmp_path):
  (tmp_path / 'usr/music').mkdir(parents=True)
  (tmp_path / 'usr/sfx').mkdir(parents=True)
  (tmp_path / 'usr/music/a.ogg').write_bytes(b'')
  (tmp_path / 'usr/sfx/boom.wav').write_bytes(b'')
  with zipfile.ZipFile(tmp_path / 'usr/data.pk3', 'w') as z:
    z.writestr('music/b.wav', _wav_bytes(_music(1.0)))
    z.writestr('textures/c.png', b'')
  (tmp_path / 'usr/music/tune.XM').write_bytes(b'')
  (tmp_path / 'usr/music/notes.mid').write_bytes(b'')
  sources = corpus.find_sources(tmp_path, 'pkg', 'music')
  assert [s.name for s in sources] == ['usr/data.pk3!music/b.wav', 'usr/music/a.ogg', 'usr/music/tune.XM']
  assert corpus.read_bytes(tmp_path, sources[0]) == _wav_bytes(_music(1.0))


def test_deduplicate_drops_a_quieter_shifted_copy_and_keeps_other_tracks():
  a, b = _music(60.0, 0), _music(60.0, 1)
  copy = 0.5 * np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), a])[:a.size]
  tracks = [a, b, copy]
  sigs = [(corpus.envelope_signature(x), corpus.spectral_signature(x)) for x in tracks]
  assert corpus.deduplicate(sigs, [x.size / SAMPLE_RATE for x in tracks]) == [0, 1]


def _split_of(work, tracks, seconds=60.0, rows=150, distractor_rows=10_000):
  """`build.split` of these (name, audio, fingerprinter_only) music tracks plus two noise files;
  fingerprinter-only music comes from package 'fp-pkg', the rest from 'pkg'."""
  (work / 'decoded').mkdir(parents=True, exist_ok=True)
  entries = []
  for name, x, only in tracks + [('noise0', _music(5.0, 90), False), ('noise1', _music(5.0, 91), False)]:
    np.save(work / 'decoded' / f'{name}.npy', x)
    entries.append({'package': 'fp-pkg' if only else 'pkg', 'source': name, 'file': f'{name}.npy', 'fingerprinter_only': only,
                    'kind': 'noise' if name.startswith('noise') else 'music', 'seconds': x.size / SAMPLE_RATE})
  return build.split(work, {'entries': entries}, seed=0, fp_seconds=seconds, n_reference_rows=rows,
                     n_flow_rows=rows, n_distractor_rows=distractor_rows, log=lambda m: None)


def test_fingerprinter_only_music_joins_that_split_and_leaves_the_others_as_they_were(tmp_path):
  main = [(f'main{i}', _music(60.0, i), False) for i in range(8)]
  copy = 0.5 * np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), main[3][1]])[:main[3][1].size]
  extra = [('extra0', _music(60.0, 20), True), ('copy_of_main3', copy, True), ('extra1', _music(60.0, 21), True)]
  before = _split_of(tmp_path / 'before', main)
  after = _split_of(tmp_path / 'after', main + extra)
  names = lambda result, split: [e['source'] for e in result['splits'][split]]
  for split in ('reference', 'flow_train', 'distractors', 'noise_train', 'noise_query'):
    assert names(after, split) == names(before, split) and names(before, split)
  assert names(after, 'fingerprinter') == names(before, 'fingerprinter') + ['extra0', 'extra1']
  assert after['duplicates_dropped'] == ['fp-pkg:copy_of_main3']
  assert after['distinct_tracks'] == before['distinct_tracks'] + 2 == 10


def test_music_left_over_once_the_distractors_are_full_trains_the_fingerprinter(tmp_path):
  main = [(f'main{i}', _music(60.0, i), False) for i in range(8)]  # 119 rows each.
  roomy = _split_of(tmp_path / 'roomy', main)
  capped = _split_of(tmp_path / 'capped', main, distractor_rows=100)
  names = lambda result, split: [e['source'] for e in result['splits'][split]]
  for split in ('reference', 'flow_train', 'noise_train', 'noise_query'):
    assert names(capped, split) == names(roomy, split)
  assert len(names(roomy, 'distractors')) == 2
  assert names(capped, 'distractors') == names(roomy, 'distractors')[:1]
  assert names(capped, 'fingerprinter') == names(roomy, 'fingerprinter') + names(roomy, 'distractors')[1:]


def test_splits_are_remade_for_another_catalog_and_read_back_for_the_same(tmp_path):
  main = [(f'main{i}', _music(60.0, i), False) for i in range(8)]
  first = _split_of(tmp_path, main)
  written = (tmp_path / 'splits.json').stat().st_mtime_ns
  assert _split_of(tmp_path, main) == first and (tmp_path / 'splits.json').stat().st_mtime_ns == written
  more = _split_of(tmp_path, main + [('extra0', _music(60.0, 20), True)])
  assert [e['source'] for e in more['splits']['fingerprinter']][-1] == 'extra0'
  assert json.loads((tmp_path / 'splits.json').read_text()) == more


def test_weights_record_their_music_so_a_rebuild_without_it_describes_it_the_same(tmp_path, monkeypatch):
  monkeypatch.setattr(build, 'WEIGHTS', tmp_path / 'weights' / 'fingerprinter.npz')
  main = [(f'track{i}', _music(12.0, i), False) for i in range(8)]
  full = _split_of(tmp_path / 'full', main + [('extra0', _music(12.0, 20), True)], seconds=12.0, rows=40)
  licenses = {'pkg': ['GPL-2+'], 'fp-pkg': ['CC-BY-3.0']}
  init = tmp_path / 'init.npz'
  fingerprinter.save_weights(init, fingerprinter.init_params(jax.random.key(0), _tiny_training_inputs()[1]))
  params, info = build.train_fingerprinter(tmp_path / 'full', full, 0, steps=0, batch=4, init=init,
                                           retrain=True, licenses=licenses, whiten_excerpts=64,
                                           log=lambda m: None)
  fp = full['splits']['fingerprinter']
  assert info['trained_on'] == {**build.split_summary(fp), 'licenses': licenses}
  assert info['trained_on']['files'][-1] == 'fp-pkg:extra0'
  assert json.loads(build.WEIGHTS.with_suffix('.json').read_text()) == info
  # The same main music without the fingerprinter-only package: R, G and D are the same.
  lean = _split_of(tmp_path / 'lean', main, seconds=12.0, rows=40)
  assert len(lean['splits']['fingerprinter']) == len(fp) - 1
  export = lambda work, splits, cat, out: build.export(
      work, out, params, splits, cat, info, seed=0, n_queries=20, condition_queries=10, log=lambda m: None)
  meta = export(tmp_path / 'full', full, {'licenses': licenses}, tmp_path / 'a')
  lean_meta = export(tmp_path / 'lean', lean, {'licenses': {'pkg': ['GPL-2+']}}, tmp_path / 'b')
  assert meta['splits']['fingerprinter'] == {k: info['trained_on'][k] for k in ('tracks', 'minutes', 'files')}
  assert meta['packages']['fp-pkg'] == {'licenses': ['CC-BY-3.0']} and 'trained_on' not in meta['fingerprinter']
  for key in ('distinct_music_tracks', 'duplicates_dropped'):  # These describe the music fetched.
    meta.pop(key), lean_meta.pop(key)
  assert lean_meta == meta
  for f in (tmp_path / 'a').glob('*.npy'):
    assert f.read_bytes() == (tmp_path / 'b' / f.name).read_bytes(), f.name


def test_export_writes_float16_rows_scores_them_and_reruns_to_the_same_files(tmp_path):
  work = tmp_path / 'work'
  splits = _split_of(work, [(f'track{i}', _music(12.0, i), False) for i in range(8)], seconds=12.0, rows=40)
  for f in (work / 'decoded').iterdir():
    f.chmod(0o444)  # Any write to an input fails.
  params = fingerprinter.init_params(jax.random.key(0), _tiny_training_inputs()[1])
  export = lambda out: build.export(work, out, params, splits, {'licenses': {'pkg': ['GPL-2+']}},
                                    {'steps': 0}, seed=0, n_queries=60, condition_queries=20,
                                    log=lambda m: None)
  meta = export(tmp_path / 'a')
  sp = splits['splits']
  rows = lambda name: np.concatenate([build.database_rows(build.window_fingerprints(
      params, [np.load(work / 'decoded' / e['file'])])) for e in sp[name]])
  for name in ('reference', 'flow_train', 'distractors'):
    e_nd = np.load(tmp_path / 'a' / f'{name}.npy')
    assert e_nd.dtype == np.float16 and meta['rows'][f'{name}.npy'] == e_nd.shape[0] > 0
    np.testing.assert_allclose(e_nd, rows(name), atol=1e-3)
  query_qd = np.load(tmp_path / 'a' / 'queries.npy')
  truth_q = np.load(tmp_path / 'a' / 'ground_truth.npy')
  tracks_r = np.load(tmp_path / 'a' / 'reference_tracks.npy')
  assert query_qd.dtype == np.float16 and query_qd.shape == (60, fingerprinter.DIM)
  np.testing.assert_allclose(np.linalg.norm(query_qd.astype(np.float32), axis=1), 1.0, atol=1e-2)
  assert truth_q.max() < tracks_r.size == meta['rows']['reference.npy']
  r = meta['retrieval']
  assert r['hr1_reference_only'] == build.top1_rates(query_qd, truth_q, np.load(tmp_path / 'a' / 'reference.npy'),
                                                     tracks_r)['hr1']
  assert [d['n_distractors'] for d in r['with_distractors']] == [meta['rows']['distractors.npy']]
  assert [c['condition'] for c in r['by_condition']] == [c for c, *_ in build.CONDITIONS]
  assert sum(b['queries'] for b in r['by_offset']) == 60
  single_rd = np.concatenate([build.embed_windows(params, build.windows(np.load(work / 'decoded' / e['file'])))
                              for e in sp['reference']])
  assert r['single_window_rows'] == build.top1_rates(query_qd, truth_q, single_rd, tracks_r)
  # A second run reads the embedding cache, a third embeds afresh: both write the same files.
  export(tmp_path / 'b')
  for cache in (work / 'embeddings').glob('*/*/*.npz'):
    cache.unlink()
  export(tmp_path / 'c')
  for f in (tmp_path / 'a').iterdir():
    assert f.read_bytes() == (tmp_path / 'b' / f.name).read_bytes() == (tmp_path / 'c' / f.name).read_bytes(), f.name


def test_copyright_licenses_follow_dep5_stanzas_and_free_form_wording(tmp_path):
  doc = tmp_path / 'usr/share/doc/pkg'
  doc.mkdir(parents=True)
  (doc / 'copyright').write_text(
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n'
      'Files: *\nLicense: GPL-3+\n\nFiles: data/music/*\n sounds/*.ogg\nLicense: CC-BY-SA-3.0\n text\n')
  music = corpus.Source('pkg', 'usr/share/game/data.pk3', 'data/music/a.ogg')
  code = corpus.Source('pkg', 'usr/share/game/other.wav')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [music]) == ['CC-BY-SA-3.0']
  assert corpus.copyright_licenses(tmp_path, 'pkg', [music, code]) == ['CC-BY-SA-3.0', 'GPL-3+']
  (doc / 'copyright').write_text('This program is free software; you can redistribute it under the terms\n'
                                 'of the GNU General Public License as published by the Free Software\n'
                                 'Foundation; either version 2 of the License, or (at your option) any later version.\n')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [code]) == ['GPL-2+']
  (doc / 'copyright').write_text('Permission is hereby granted, free of charge, to any person obtaining\n'
                                 'a copy of this software.\n\nSome files belonging to the game content are '
                                 'licensed under the\n Creative Commons Attribution 3.0 license or the CC0 license.\n')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [code]) == ['CC-BY-3.0', 'CC0-1.0', 'Expat']


def _fake_commands(tmp_path, **scripts):
  """A folder of shell scripts named for the commands they stand in for."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name, body in scripts.items():
    fake = bin_dir / name
    fake.write_text(f'#!/bin/sh\n{body}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  return bin_dir


def test_missing_package_is_one_line_and_nonzero(tmp_path, monkeypatch, capsys):
  bin_dir = _fake_commands(tmp_path, ffmpeg='exit 1',
                           **{'apt-get': 'echo "E: Unable to locate package $2" >&2\nexit 100'})
  monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work-dir', str(tmp_path / 'w'), '--music-packages', 'no-such-pkg'])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert err.count('\n') == 1 and 'Unable to locate package no-such-pkg' in err and 'hint' in err


def test_missing_ffmpeg_is_one_line_before_any_download(tmp_path, monkeypatch, capsys):
  bin_dir = _fake_commands(tmp_path, **{'apt-get': 'touch "$2"_1.0_all.deb'})
  monkeypatch.setenv('PATH', str(bin_dir))  # No ffmpeg on it.
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work-dir', str(tmp_path / 'w'), '--music-packages', 'pkg'])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert err.count('\n') == 1 and 'ffmpeg: not found' in err and 'apt-get install -y ffmpeg' in err
  assert not (tmp_path / 'w' / 'debs').exists()


@pytest.mark.parametrize('flags, message', [
    (['--fp-per-track', '3'], '--fp-per-track 3: must be even'),
    (['--fp-batch', '12', '--fp-per-track', '8'], 'divide --fp-batch 12'),
    (['--fp-init', 'no/such/weights.npz'], '--fp-init no/such/weights.npz: no such file'),
    (['--fp-mine-every', '-3'], '--fp-mine-every -3: must be 0 (off) or a number of steps'),
    (['--fp-loss', 'triplet'], "--fp-loss: invalid choice: 'triplet'"),
])
def test_bad_fingerprinter_flags_are_one_line_errors(tmp_path, capsys, flags, message):
  with pytest.raises(SystemExit) as exit_info:
    build_data.main(['--work-dir', str(tmp_path / 'w'), *flags])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and err.count('\n') == 1 and message in err
  assert not (tmp_path / 'w').exists()  # Refused before any work.


@pytest.mark.parametrize('loss', sorted(fingerprinter.LOSSES))
def test_every_loss_is_a_choice_of_the_command_line(tmp_path, capsys, loss):
  # Accepted: the refusal is the next check's, still before any work.
  with pytest.raises(SystemExit):
    build_data.main(['--work-dir', str(tmp_path / 'w'), '--fp-loss', loss, '--fp-per-track', '3'])
  assert '--fp-per-track 3: must be even' in capsys.readouterr().err


def test_top1_rates_loosen_a_hit_to_the_neighbour_then_the_track():
  reference = np.eye(6, dtype=np.float32)
  tracks = np.array([0, 0, 0, 0, 1, 1])
  # Each query points at one row; truth 1 each time: exact, neighbour, far on the track, other track.
  queries = reference[[1, 2, 3, 4]]
  rates = build.top1_rates(queries, np.array([1, 1, 1, 1]), reference, tracks)
  assert rates == {'hr1': 0.25, 'near': 0.5, 'track': 0.75}
  # Row 4 is adjacent to row 3 but on another track: not near.
  assert build.top1_rates(reference[[4]], np.array([3]), reference, tracks)['near'] == 0.0


def test_whitening_makes_the_distortion_scatter_round_and_folds_into_the_last_layer():
  tiny = fingerprinter.Encoder(channels=(4, 8), hidden=16, dim=8, normalise=False)
  params = fingerprinter.init_params(jax.random.key(0), tiny)
  rng = np.random.default_rng(0)
  x_bs = np.stack([_music(1.0, seed) for seed in range(300)])
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
  raw = build.top1_rates(unit(queries_qd[2000:]), truth_q[2000:], unit(rows_nd), tracks)['hr1']
  whitened = build.top1_rates(unit(queries_qd[2000:] @ w_dd + b_d), truth_q[2000:],
                              unit(rows_nd @ w_dd + b_d), tracks)['hr1']
  assert whitened > raw + 0.1, (raw, whitened)


def test_fit_whitening_changes_only_the_last_layer_and_keeps_unit_fingerprints():
  (key, audio, bounds, noise, rirs), _ = _tiny_training_inputs()
  params = fingerprinter.init_params(jax.random.key(0))
  white = build.fit_whitening(key, params, audio, bounds, noise, rirs, n_excerpts=300, chunk=150,
                              log=lambda m: None)
  assert not np.allclose(white['Dense_1']['kernel'], params['Dense_1']['kernel'])
  jax.tree.map(np.testing.assert_array_equal, white['Dense_0'], params['Dense_0'])
  e_nd = build.embed_windows(white, build.windows(audio))
  np.testing.assert_allclose(np.linalg.norm(e_nd, axis=1), 1.0, atol=1e-5)


def test_query_starts_are_off_grid_and_their_truth_is_the_nearest_window():
  bounds = np.array([[0, 7 * SAMPLE_RATE], [7 * SAMPLE_RATE, 12 * SAMPLE_RATE]])
  starts, truth, off_grid = build.query_starts(jax.random.key(0), bounds, 500)
  rows_k = [build.n_windows(int(b - a)) for a, b in bounds]
  track = (starts >= bounds[1, 0]).astype(int)
  local = starts - bounds[track, 0]
  row = truth - np.where(track == 1, rows_k[0], 0)
  assert np.all(local % HOP != 0) and np.all(local + SEGMENT <= bounds[track, 1] - bounds[track, 0])
  assert np.all((row >= 0) & (row < np.take(rows_k, track)))
  np.testing.assert_allclose(off_grid, np.abs(local - row * HOP) / SAMPLE_RATE)
  assert 0 < off_grid.min() and off_grid.max() <= 0.25
  # No other window of the track starts nearer.
  assert np.all(off_grid * SAMPLE_RATE <= np.abs(local[:, None] - np.arange(14)[None] * HOP).min(1) + 1e-9)
  again = build.query_starts(jax.random.key(0), bounds, 500)
  np.testing.assert_array_equal(again[0], starts)


def test_hit_rates_by_offset_split_the_queries_into_bands():
  reference = np.eye(4, dtype=np.float32)
  queries = reference[[0, 1, 2, 3, 0]]
  truth = np.array([0, 1, 3, 3, 1])
  off_grid = np.array([0.01, 0.07, 0.12, 0.25, 0.24])
  rows = build.hit_rates_by_offset(queries, truth, off_grid, reference, np.zeros(4, int))
  assert [r['queries'] for r in rows] == [1, 1, 1, 0, 2]
  assert [r['hr1'] for r in rows if r['queries']] == [1.0, 1.0, 0.0, 0.5]


def test_widened_encoder_computes_the_same_fingerprints_with_twice_the_channels():
  params = fingerprinter.init_params(jax.random.key(0))
  wide = fingerprinter.widen(params, jax.random.key(1), noise=0.0)
  assert fingerprinter.encoder_for(params) == fingerprinter.Encoder()
  assert fingerprinter.encoder_for(wide).channels == fingerprinter.WIDE_CHANNELS
  x_bs = np.stack([_music(1.0, seed) for seed in range(4)])
  np.testing.assert_allclose(fingerprinter.embed_audio(wide, x_bs), fingerprinter.embed_audio(params, x_bs),
                             atol=1e-5)
  jittered = fingerprinter.widen(params, jax.random.key(1))
  moved = np.abs(fingerprinter.embed_audio(jittered, x_bs) - fingerprinter.embed_audio(params, x_bs)).max()
  assert 0 < moved < 0.1  # The symmetry is broken, the function barely moved.


def test_the_starting_point_is_random_or_the_given_weights_and_widen_doubles_either(tmp_path):
  params = fingerprinter.init_params(jax.random.key(0))
  fingerprinter.save_weights(tmp_path / 'w.npz', params)
  assert build.starting_point(None, False, jax.random.key(1)) == (None, fingerprinter.Encoder())
  start, model = build.starting_point(None, True, jax.random.key(1))
  assert start is None and model.channels == (32, 64, 128, 256, 512)
  start, model = build.starting_point(tmp_path / 'w.npz', False, jax.random.key(1))
  assert model == fingerprinter.Encoder()
  np.testing.assert_allclose(start['Dense_1']['kernel'], params['Dense_1']['kernel'], atol=1e-3)
  start, model = build.starting_point(tmp_path / 'w.npz', True, jax.random.key(1))
  assert model.channels == fingerprinter.WIDE_CHANNELS == fingerprinter.encoder_for(start).channels


def test_a_widened_encoder_fine_tunes(tmp_path):
  inputs, tiny = _tiny_training_inputs()
  wide = fingerprinter.widen(fingerprinter.init_params(jax.random.key(3), tiny), jax.random.key(4))
  model = fingerprinter.encoder_for(wide)
  assert model.channels == (8, 16)
  params, _ = fingerprinter.train(*inputs, tmp_path, steps=2, batch=4, init=wide, model=model)
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, wide)
  assert not np.allclose(params['Conv_1']['kernel'], wide['Conv_1']['kernel'])
