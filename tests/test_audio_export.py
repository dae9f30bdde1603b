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
  write = lambda out: export.export(work, build_config(out_dir=out, queries=60, condition_queries=20,
                                                                 sequence_queries=12), weights,
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
  for name in ('flow_train', 'distractors'):
    track_n = np.load(tmp_path / 'a' / f'{name}_tracks.npy')
    assert len(track_n) == meta['rows'][f'{name}.npy']
    # Files of tracks: each track one run of rows, as many runs as tracks.
    assert (np.diff(track_n) != 0).sum() + 1 == len(np.unique(track_n)) == len(sp[name])
  seq_qld = np.load(tmp_path / 'a' / 'sequence_queries.npy')
  seq_truth_q = np.load(tmp_path / 'a' / 'sequence_ground_truth.npy')
  assert seq_qld.dtype == np.float16 and seq_qld.shape == (12, export.SEQUENCE_LENGTHS[-1], fingerprinter.DIM)
  # Every segment's row exists, in the first segment's track.
  assert np.all(tracks_r[seq_truth_q] == tracks_r[seq_truth_q + export.SEQUENCE_LENGTHS[-1] - 1])
  r = meta['retrieval']
  reference_rd = np.load(tmp_path / 'a' / 'reference.npy')
  assert [s['segments'] for s in r['sequences']] == list(export.SEQUENCE_LENGTHS)
  assert r['sequences'] == scoring.sequence_rates(seq_qld, seq_truth_q, reference_rd, tracks_r,
                                                  export.SEQUENCE_LENGTHS)
  assert meta['sequence_queries']['n'] == 12
  track_qd = np.load(tmp_path / 'a' / 'track_queries.npy')
  assert track_qd.dtype == np.float16 and track_qd.shape == reference_rd.shape
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
