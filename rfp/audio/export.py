"""Stage 4, export: every split embedded into database rows, the queries made and
scored, and OUT/*.npy with OUT/metadata.json written."""

import pathlib

import jax
import numpy as np

from rfp.audio import augment, features, fingerprinter
from rfp.audio.embed import DATABASE_SHIFTS, database_rows, embed_tracks
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT
from rfp.audio.queries import make_queries, track_queries
from rfp.audio.scoring import (hit_rates_by_condition, hit_rates_by_distractor_count,
                               hit_rates_by_offset, sequence_rates, top1_rates)
from rfp.audio.splits import split_summary
from rfp.audio.workdir import concat_audio, write_json
from rfp.files import atomic_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Query lengths the systems' own evaluations default to (1 to 10 s at 0.5 s hop):
# the metadata scores each; the shipped queries hold the longest.
SEQUENCE_LENGTHS = (1, 3, 5, 9, 11, 19)


def _embedded_splits(work, params, sp, log):
  """{name: rows, name_tracks: each row's track} for R, G and D, and the folder
  caching them: rows as `database_rows` makes them, plus R's offset-0 fingerprints."""
  # Retrained weights or other shifts never reuse old rows, nor does a cache of another layout.
  cache = (work / 'embeddings' / fingerprinter.digest(params)
           / f'rows-shifts{",".join(map(str, DATABASE_SHIFTS))}')
  cache.mkdir(parents=True, exist_ok=True)
  arrays = {}
  for name in ('reference', 'flow_train', 'distractors'):
    path = cache / f'{name}.npz'
    if not path.exists():
      log(f'export: embedding {name} ({len(sp[name])} tracks)')
      f_nsd, track_n = embed_tracks(work, params, sp[name])
      # Offset-0 fingerprints alone are the single-window rows the metadata compares against.
      with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez(f, rows=database_rows(f_nsd).astype(np.float16), track=track_n,
                 single=f_nsd[:, DATABASE_SHIFTS.index(0)].astype(np.float16))
    with np.load(path) as f:
      arrays[name], arrays[f'{name}_tracks'] = f['rows'], f['track']
  return arrays, cache


def export(work, build, weights, splits, cat, log=print):
  """Embeds every split, makes and scores the queries, writes `build.out_dir`/ and its
  metadata.json; `weights` is the fingerprinter stage's `training.Weights`.

  `build.queries` excerpts are scored, and `build.condition_queries` more under
  each of `queries.CONDITIONS` besides; `build.sequence_queries` excerpts of
  the longest of `SEQUENCE_LENGTHS` segments are made and scored per length.
  The flow-training rows and the distractor pool are shipped with their track
  ids, as the references are: each is a file of tracks, windows in order.
  """
  out_dir, seed, params = pathlib.Path(build.out_dir), build.seed, weights.params
  out_dir.mkdir(parents=True, exist_ok=True)
  sp = splits['splits']
  arrays, cache = _embedded_splits(work, params, sp, log)
  k_queries, k_eval = jax.random.split(jax.random.key(seed + 3))
  query_rirs_nl = augment.room_impulse_responses(jax.random.key(seed + 2), 2000)
  log(f'export: {build.queries} queries')
  audio, bounds = concat_audio(work, sp['reference'])
  noise, _ = concat_audio(work, sp['noise_query'])
  query_qd, truth_q, off_grid_q = make_queries(k_queries, params, audio, bounds, noise, build.queries,
                                               query_rirs_nl)
  query_qd = query_qd.astype(np.float16)
  log(f'export: {build.sequence_queries} queries of {SEQUENCE_LENGTHS[-1]} segments')
  # A key of their own: the single-window queries stay as they were.
  seq_qld, seq_truth_q, _ = make_queries(jax.random.key(seed + 4), params, audio, bounds, noise,
                                         build.sequence_queries, query_rirs_nl,
                                         segments=SEQUENCE_LENGTHS[-1])
  seq_qld = seq_qld.astype(np.float16)
  log('export: a distorted query window for every reference row (NAFP layout)')
  track_qd = track_queries(jax.random.key(seed + 5), params, audio, bounds, noise,
                           query_rirs_nl).astype(np.float16)
  files = {'flow_train.npy': arrays['flow_train'],
           'flow_train_tracks.npy': arrays['flow_train_tracks'].astype(np.int32),
           'reference.npy': arrays['reference'],
           'reference_tracks.npy': arrays['reference_tracks'].astype(np.int32),
           'queries.npy': query_qd, 'ground_truth.npy': truth_q,
           'sequence_queries.npy': seq_qld, 'sequence_ground_truth.npy': seq_truth_q,
           'track_queries.npy': track_qd,
           'distractors.npy': arrays['distractors'],
           'distractors_tracks.npy': arrays['distractors_tracks'].astype(np.int32)}
  for name, array in files.items():
    np.save(out_dir / name, array)
  log('export: scoring')
  reference_rd, tracks_r = arrays['reference'], arrays['reference_tracks']
  scores = hit_rates_by_distractor_count(k_eval, query_qd, truth_q, reference_rd, tracks_r,
                                         arrays['distractors'])
  with np.load(cache / 'reference.npz') as f:  # Only R is scored with single-window rows.
    scores['single_window_rows'] = top1_rates(query_qd, truth_q, f['single'], tracks_r)
  scores['sequences'] = sequence_rates(seq_qld, seq_truth_q, reference_rd, tracks_r,
                                       SEQUENCE_LENGTHS)
  scores['by_offset'] = hit_rates_by_offset(query_qd, truth_q, off_grid_q, reference_rd, tracks_r)
  scores['by_condition'] = hit_rates_by_condition(jax.random.fold_in(k_queries, 1), params, audio,
                                                  bounds, noise, query_rirs_nl, reference_rd, tracks_r,
                                                  build.condition_queries)
  metadata = _metadata(seed, weights, splits, cat, files, scores)
  write_json(out_dir / 'metadata.json', metadata)
  return metadata


def _shown(path):
  """`path` as metadata.json names it: relative to the repository when inside it."""
  path = pathlib.Path(path).resolve()
  return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _metadata(seed, weights, splits, cat, files, scores):
  sp = splits['splits']
  summaries = {name: split_summary(sp[name]) for name in sp}
  licenses = dict(cat['licenses'])
  trained_on = weights.info.get('trained_on')
  if trained_on:  # The weights' own record: a build that reuses them need not fetch that music.
    summaries['fingerprinter'] = {k: trained_on[k] for k in ('tracks', 'minutes', 'files')}
    licenses.update(trained_on['licenses'])
  packages = sorted({f.split(':', 1)[0] for summary in summaries.values() for f in summary['files']})
  encoder = fingerprinter.encoder_for(weights.params)
  truth_q = files['ground_truth.npy']
  return {
      'description': 'Real NAFP-style fingerprints of free-licensed Debian game soundtracks; '
                     'built by build_data.py (see docs/data.md).',
      'sample_rate': SAMPLE_RATE, 'window_seconds': SEGMENT / SAMPLE_RATE, 'hop_seconds': HOP / SAMPLE_RATE,
      'dim': fingerprinter.DIM, 'dtype': 'float16', 'l2_normalised': True, 'seed': seed,
      'database_rows': {'shift_seconds': [s / SAMPLE_RATE for s in DATABASE_SHIFTS],
                        'rule': "mean of the window's fingerprints at these offsets, L2-normalised "
                                '(reference, flow_train, distractors; queries are single windows)'},
      'packages': {p: {'licenses': licenses.get(p, [])} for p in packages},
      'rows': {name: int(array.shape[0]) for name, array in files.items()},
      'splits': summaries,
      'distinct_music_tracks': splits['distinct_tracks'],
      'reference_max_repetition': splits['max_reference_repetition'],
      'duplicates_dropped': splits['duplicates_dropped'],
      'fingerprinter': {
          'architecture': f'log-mel {features_summary()} -> 3x3 stride-2 convs {list(encoder.channels)} '
                          f'with LayerNorm+ELU -> Dense {encoder.hidden} ELU -> Dense '
                          f'{encoder.dim} (distortion whitening folded in) -> L2 normalise',
          'loss': 'contrastive (temperature 0.05), positive = distorted, time-shifted copy; '
                  'anchors in groups of per_track from one track (moments and their 0.5 s neighbours); '
                  'each stage names its loss: nt-xent (SimCLR: every segment against every other; '
                  'stages that name none) or query-to-database (each copy against the clean segments)',
          'augmentations': augmentation_summary(),
          'weights': _shown(weights.path),
          **{k: v for k, v in weights.info.items() if k != 'trained_on'}},
      'queries': {'n': int(len(truth_q)), 'source': 'reference tracks, off-grid offsets',
                  'distortion': augmentation_summary(), 'noise': 'noise_query files (disjoint from training)',
                  'rir_seed': seed + 2, 'ground_truth': 'row in reference.npy of the nearest window'},
      'sequence_queries': {
          'n': int(len(files['sequence_ground_truth.npy'])),
          'segments': SEQUENCE_LENGTHS[-1],
          'source': 'reference tracks, off-grid offsets; the whole excerpt is distorted, then '
                    'cut into 1 s windows at the database hop; shorter queries are prefixes',
          'ground_truth': 'row in reference.npy of the first segment; segment j matches row + j'},
      'tracks': 'flow_train_tracks.npy, reference_tracks.npy and distractors_tracks.npy give each '
                "row's track; a track's rows are consecutive windows in time order",
      'retrieval': {'search': 'exact inner product', **scores},
  }


def features_summary():
  f = features
  return (f'{f.N_MELS} mel bins {f.F_MIN:.0f}-{f.F_MAX:.0f} Hz, n_fft {f.N_FFT}, '
          f'hop {f.FRAME_HOP / f.SAMPLE_RATE * 1000:.0f} ms, {f.N_FRAMES} frames')


def augmentation_summary():
  return {'time_offset_seconds': [-augment.MAX_OFFSET / SAMPLE_RATE, augment.MAX_OFFSET / SAMPLE_RATE],
          'snr_db': list(augment.SNR_DB_RANGE), 'rt60_seconds': list(augment.RT60_RANGE),
          'drr_db': list(augment.DRR_DB_RANGE), 'rir_seconds': augment.RIR_LEN / SAMPLE_RATE,
          'rir': 'direct path + exponentially decaying Gaussian noise'}
