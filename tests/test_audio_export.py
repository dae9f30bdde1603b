"""data/ as the export writes it."""

import jax
import numpy as np

from rfp.audio import export, fingerprinter, scoring, training
from rfp.audio.embed import database_rows, embed_windows, window_fingerprints, windows
from rfp.audio.queries import CONDITIONS
from rfp.audio.workdir import track_audio
from audio_helpers import build_config, music, split_of, tiny_training_inputs


def test_export_writes_float16_rows_scores_them_and_reruns_to_the_same_files(tmp_path):
  work = tmp_path / 'work'
  splits = split_of(work, [(f'track{i}', music(12.0, i), False) for i in range(8)], seconds=12.0, rows=40)
  for f in (work / 'decoded').iterdir():
    f.chmod(0o444)  # Any write to an input fails.
  params = fingerprinter.init_params(jax.random.key(0), tiny_training_inputs()[1])
  weights = training.Weights(training.WEIGHTS, params, {'steps': 0})
  write = lambda out: export.export(work, build_config(out_dir=out, queries=60, condition_queries=20), weights,
                                    splits, {'licenses': {'pkg': ['GPL-2+']}}, log=lambda m: None)
  meta = write(tmp_path / 'a')
  sp = splits['splits']
  rows = lambda name: np.concatenate([database_rows(window_fingerprints(params, [track_audio(work, e)]))
                                      for e in sp[name]])
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
  reference_rd = np.load(tmp_path / 'a' / 'reference.npy')
  assert r['hr1_reference_only'] == scoring.top1_rates(query_qd, truth_q, reference_rd, tracks_r)['hr1']
  assert [d['n_distractors'] for d in r['with_distractors']] == [meta['rows']['distractors.npy']]
  assert [c['condition'] for c in r['by_condition']] == [c for c, *_ in CONDITIONS]
  assert sum(b['queries'] for b in r['by_offset']) == 60
  single_rd = np.concatenate([embed_windows(params, windows(track_audio(work, e))) for e in sp['reference']])
  assert r['single_window_rows'] == scoring.top1_rates(query_qd, truth_q, single_rd, tracks_r)
  assert meta['fingerprinter']['weights'] == 'rfp/audio/weights/fingerprinter.npz'  # The shipped file, as named.
  # A second run reads the embedding cache, a third embeds afresh: both write the same files.
  write(tmp_path / 'b')
  for cache in (work / 'embeddings').glob('*/*/*.npz'):
    cache.unlink()
  write(tmp_path / 'c')
  for f in (tmp_path / 'a').iterdir():
    assert f.read_bytes() == (tmp_path / 'b' / f.name).read_bytes() == (tmp_path / 'c' / f.name).read_bytes(), f.name
