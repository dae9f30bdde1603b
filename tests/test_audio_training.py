"""The fingerprinter stage: shipped weights, or a retrain and where it writes."""

import json

import jax
import numpy as np

from rfp.audio import export, fingerprinter, training
from rfp.audio.embed import embed_windows, windows
from rfp.audio.splits import split_summary
from audio_helpers import build_config, music, split_of, tiny_training_inputs


def _tiny_init(tmp_path):
  """A weights file of the tiny encoder, to fine-tune from (0 steps: only the whitening is fit)."""
  init = tmp_path / 'init.npz'
  fingerprinter.save_weights(init, fingerprinter.init_params(jax.random.key(0), tiny_training_inputs()[1]))
  return init


def _retrain(work, splits, init, licenses=None, **fields):
  build = build_config(fp_steps=0, fp_batch=4, fp_init=init, retrain_fingerprinter=True, whiten_excerpts=64,
                       **fields)
  return training.train_fingerprinter(work, splits, build, licenses, log=lambda m: None)


def test_weights_record_their_music_so_a_rebuild_without_it_describes_it_the_same(tmp_path):
  main = [(f'track{i}', music(12.0, i), False) for i in range(8)]
  full = split_of(tmp_path / 'full', main + [('extra0', music(12.0, 20), True)], seconds=12.0, rows=40)
  licenses = {'pkg': ['GPL-2+'], 'fp-pkg': ['CC-BY-3.0']}
  weights = _retrain(tmp_path / 'full', full, _tiny_init(tmp_path), licenses, weights_dir=tmp_path / 'weights')
  info = weights.info
  fp = full['splits']['fingerprinter']
  assert info['trained_on'] == {**split_summary(fp), 'licenses': licenses}
  assert info['trained_on']['files'][-1] == 'fp-pkg:extra0'
  assert json.loads(weights.path.with_suffix('.json').read_text()) == info
  # The same main music without the fingerprinter-only package: R, G and D are the same.
  lean = split_of(tmp_path / 'lean', main, seconds=12.0, rows=40)
  assert len(lean['splits']['fingerprinter']) == len(fp) - 1
  write = lambda work, splits, cat, out: export.export(
      work, build_config(out_dir=out, queries=20, condition_queries=10), weights, splits, cat, log=lambda m: None)
  meta = write(tmp_path / 'full', full, {'licenses': licenses}, tmp_path / 'a')
  lean_meta = write(tmp_path / 'lean', lean, {'licenses': {'pkg': ['GPL-2+']}}, tmp_path / 'b')
  assert meta['splits']['fingerprinter'] == {k: info['trained_on'][k] for k in ('tracks', 'minutes', 'files')}
  assert meta['packages']['fp-pkg'] == {'licenses': ['CC-BY-3.0']} and 'trained_on' not in meta['fingerprinter']
  assert meta['fingerprinter']['weights'] == str(tmp_path / 'weights' / 'fingerprinter.npz')
  for key in ('distinct_music_tracks', 'duplicates_dropped'):  # These describe the music fetched.
    meta.pop(key), lean_meta.pop(key)
  assert lean_meta == meta
  for f in (tmp_path / 'a').glob('*.npy'):
    assert f.read_bytes() == (tmp_path / 'b' / f.name).read_bytes(), f.name


def test_a_retrain_writes_where_it_is_told_and_over_the_shipped_weights_only_when_asked(tmp_path, monkeypatch):
  shipped = tmp_path / 'package' / 'fingerprinter.npz'
  monkeypatch.setattr(training, 'WEIGHTS', shipped)
  work = tmp_path / 'work'
  splits = split_of(work, [(f'track{i}', music(12.0, i), False) for i in range(8)], seconds=12.0, rows=40)
  init = _tiny_init(tmp_path)
  assert _retrain(work, splits, init).path == work / 'weights' / 'fingerprinter.npz'
  named = _retrain(work, splits, init, weights_dir=tmp_path / 'mine')
  assert named.path == tmp_path / 'mine' / 'fingerprinter.npz' and named.path.with_suffix('.json').is_file()
  assert not shipped.parent.exists()
  replaced = _retrain(work, splits, init, replace_shipped_weights=True)
  assert replaced.path == shipped
  jax.tree.map(np.testing.assert_array_equal, replaced.params, named.params)
  # Without a retrain the build uses the shipped weights as they are.
  logs = []
  used = training.train_fingerprinter(work, splits, build_config(), log=logs.append)
  assert logs == [f'fingerprinter: using {shipped}'] and used.path == shipped and used.info == replaced.info
  jax.tree.map(np.testing.assert_array_equal, used.params, replaced.params)


def test_fit_whitening_changes_only_the_last_layer_and_keeps_unit_fingerprints():
  (key, audio, bounds, noise, rirs), _ = tiny_training_inputs()
  params = fingerprinter.init_params(jax.random.key(0))
  white = training.fit_whitening(key, params, audio, bounds, noise, rirs, n_excerpts=300, chunk=150,
                                 log=lambda m: None)
  assert not np.allclose(white['Dense_1']['kernel'], params['Dense_1']['kernel'])
  jax.tree.map(np.testing.assert_array_equal, white['Dense_0'], params['Dense_0'])
  e_nd = embed_windows(white, windows(audio))
  np.testing.assert_allclose(np.linalg.norm(e_nd, axis=1), 1.0, atol=1e-5)


def test_the_starting_point_is_random_or_the_given_weights_and_widen_doubles_either(tmp_path):
  params = fingerprinter.init_params(jax.random.key(0))
  fingerprinter.save_weights(tmp_path / 'w.npz', params)
  assert training.starting_point(None, False, jax.random.key(1)) == (None, fingerprinter.Encoder())
  start, model = training.starting_point(None, True, jax.random.key(1))
  assert start is None and model.channels == (32, 64, 128, 256, 512)
  start, model = training.starting_point(tmp_path / 'w.npz', False, jax.random.key(1))
  assert model == fingerprinter.Encoder()
  np.testing.assert_allclose(start['Dense_1']['kernel'], params['Dense_1']['kernel'], atol=1e-3)
  start, model = training.starting_point(tmp_path / 'w.npz', True, jax.random.key(1))
  assert model.channels == fingerprinter.WIDE_CHANNELS == fingerprinter.encoder_for(start).channels
