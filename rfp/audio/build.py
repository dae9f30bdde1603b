"""Pipeline stages, each writing one artefact under the work dir and skipping if it exists.

catalog -> split -> fingerprinter -> export. Every stage reads the previous
one's files, so a re-run after an interruption resumes at the first missing one.
"""

import concurrent.futures
import functools
import hashlib
import json
import pathlib

import jax
import numpy as np
from tqdm import tqdm

from rfp.audio import augment, corpus, features, fingerprinter
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT

WEIGHTS = pathlib.Path(__file__).parent / 'weights' / 'fingerprinter.npz'

# Distorted excerpts the whitening is fit on: enough that the 128x128 scatter
# is well estimated (its fit took ~2 minutes on 2 CPU cores).
WHITEN_EXCERPTS = 100_000


def _write_json(path, obj):
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(obj, indent=1))
  tmp.replace(path)


def n_windows(n_samples):
  return 0 if n_samples < SEGMENT else 1 + (n_samples - SEGMENT) // HOP


def _decode_to_cache(root, source, cache_dir, min_seconds):
  key = hashlib.sha1(f'{source.package}/{source.name}'.encode()).hexdigest()[:16]
  path = cache_dir / f'{key}.npy'
  if path.exists():
    return path, np.load(path, mmap_mode='r').shape[0]
  x = corpus.load(corpus.read_bytes(root, source), f'{source.package}:{source.name}', min_seconds)
  if x is None:
    return None, 0
  np.save(path, x)
  return path, x.size


def catalog(work, music_packages=corpus.MUSIC_PACKAGES, noise_packages=corpus.NOISE_PACKAGES,
            fingerprinter_packages=corpus.FINGERPRINTER_PACKAGES, log=print):
  """Fetches, extracts and decodes every music track and noise file; lists them.

  Music from `fingerprinter_packages` is marked 'fingerprinter_only' and appended
  after the rest, so adding such packages leaves the other entries as they were.
  """
  out = work / 'catalog.json'
  wanted = {'music_packages': list(music_packages), 'noise_packages': list(noise_packages),
            'fingerprinter_packages': list(fingerprinter_packages)}
  if out.exists():
    cached = json.loads(out.read_text())
    if all(cached.get(k) == v for k, v in wanted.items()):
      return cached
  corpus.require_ffmpeg()
  cache = work / 'decoded'
  cache.mkdir(parents=True, exist_ok=True)
  entries, licenses = [], {}
  jobs = [(p, 'music', corpus.MUSIC_PATTERN, corpus.MIN_MUSIC_SECONDS, False) for p in music_packages]
  jobs += [(p, 'noise', corpus.NOISE_PATTERN, 0.0, False) for p in noise_packages]
  jobs += [(p, 'music', corpus.MUSIC_PATTERN, corpus.MIN_MUSIC_SECONDS, True)
           for p in fingerprinter_packages]
  roots = {}
  for package in dict.fromkeys(p for p, *_ in jobs):
    roots[package] = corpus.extract(corpus.fetch(package, work / 'debs'), work / 'extract' / package)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:  # ffmpeg runs out of process.
    for package, kind, pattern, min_seconds, fingerprinter_only in jobs:
      sources = corpus.find_sources(roots[package], package, pattern)
      licenses[package] = sorted(set(licenses.get(package, []))
                                 | set(corpus.copyright_licenses(roots[package], package, sources)))
      results = pool.map(lambda s: _decode_to_cache(roots[package], s, cache, min_seconds), sources)
      n = 0
      for source, (path, size) in zip(sources, results):
        if path is not None:
          entries.append({'package': package, 'source': source.name, 'kind': kind,
                          'fingerprinter_only': fingerprinter_only,
                          'file': path.name, 'seconds': round(size / SAMPLE_RATE, 2)})
          n += 1
      only = ' (fingerprinter only)' if fingerprinter_only else ''
      log(f'catalog: {package}: {n} {kind}{only} files of {len(sources)} matching')
  result = {**wanted, 'entries': entries, 'licenses': licenses}
  _write_json(out, result)
  return result


_log_mel = jax.jit(features.log_mel)


def track_repetition(work, entry):
  """How looped a track is: see `corpus.self_repetition`."""
  w_ns = windows(np.load(work / 'decoded' / entry['file']))
  mel_nmf = np.concatenate([np.asarray(_log_mel(np.asarray(w_ns[i:i + 512])))
                            for i in range(0, w_ns.shape[0], 512)])
  return corpus.self_repetition(mel_nmf)


def split(work, cat, seed, fp_seconds, n_reference_rows, n_flow_rows, n_distractor_rows,
          max_reference_repetition=0.1, log=print):
  """De-duplicates music, then assigns whole tracks to disjoint splits in a seeded order.

  Reference tracks must be loop-free (at most `max_reference_repetition` of their
  windows recurring); a looped track passed over goes to the next split instead.
  Music left over once the other splits are full, then fingerprinter-only music
  that is not a copy of a kept track, join the fingerprinter split on top of its
  `fp_seconds`; the other splits do not depend on either.
  """
  out = work / 'splits.json'
  # A catalog of other music or other split settings makes other splits.
  inputs = hashlib.sha1(json.dumps([sorted((e['file'], e['kind'], e['fingerprinter_only'])
                                           for e in cat['entries']),
                                    seed, fp_seconds, n_reference_rows, n_flow_rows,
                                    n_distractor_rows, max_reference_repetition]).encode()).hexdigest()
  if out.exists():
    cached = json.loads(out.read_text())
    if cached.get('inputs') == inputs:
      return cached
  music = [e for e in cat['entries'] if e['kind'] == 'music' and not e['fingerprinter_only']]
  extra = [e for e in cat['entries'] if e['kind'] == 'music' and e['fingerprinter_only']]
  everything = music + extra
  signatures = []
  for e in everything:
    x = np.load(work / 'decoded' / e['file'])
    signatures.append((corpus.envelope_signature(x), corpus.spectral_signature(x)))
  # `deduplicate` keeps the first of each group in input order and the other
  # packages' music comes first, so extra music only ever loses to it, never displaces a track.
  distinct = corpus.deduplicate(signatures, [e['seconds'] for e in everything])
  keep = [i for i in distinct if i < len(music)]
  kept_extra = [i for i in distinct if i >= len(music)]
  dropped = [everything[i]['package'] + ':' + everything[i]['source']
             for i in set(range(len(everything))) - set(distinct)]
  log(f'split: {len(music)} music tracks, {len(keep)} distinct after de-duplication; '
      f'{len(kept_extra)} of {len(extra)} fingerprinter-only tracks distinct from those')
  rng = np.random.default_rng(seed)
  order = [music[i] for i in rng.permutation(keep)]
  rows = {e['file']: n_windows(int(e['seconds'] * SAMPLE_RATE)) for e in everything}
  targets = [('fingerprinter', fp_seconds * 2), ('reference', n_reference_rows),
             ('flow_train', n_flow_rows), ('distractors', n_distractor_rows)]
  splits = {name: [] for name, _ in targets}
  filled = dict.fromkeys(splits, 0)
  leftover = []
  for e in order:
    # Fill each split in turn; rows from the fingerprinter split are seconds * 2.
    open_splits = [n for n, t in targets if filled[n] < t]
    if open_splits and open_splits[0] == 'reference' and track_repetition(work, e) > max_reference_repetition:
      open_splits = open_splits[1:]  # Looped tracks would make a query's true row ambiguous.
    if not open_splits:
      leftover.append(e)
      continue
    splits[open_splits[0]].append(e)
    filled[open_splits[0]] += rows[e['file']]
  more = leftover + [everything[i] for i in kept_extra]
  splits['fingerprinter'] += more
  filled['fingerprinter'] += sum(rows[e['file']] for e in more)
  noise = [e for e in cat['entries'] if e['kind'] == 'noise']
  noise = [noise[i] for i in rng.permutation(len(noise))]
  splits['noise_train'], splits['noise_query'] = noise[::2], noise[1::2]
  result = {'splits': splits, 'rows': filled, 'max_reference_repetition': max_reference_repetition,
            'distinct_tracks': len(distinct), 'duplicates_dropped': sorted(dropped), 'inputs': inputs}
  for name, items in splits.items():
    log(f'split: {name}: {len(items)} files, {sum(e["seconds"] for e in items) / 60:.0f} min')
  _write_json(out, result)
  return result


def split_summary(entries):
  """A split as metadata.json lists it: tracks, minutes and each track's 'package:source'."""
  return {'tracks': len(entries), 'minutes': round(sum(e['seconds'] for e in entries) / 60, 1),
          'files': [f"{e['package']}:{e['source']}" for e in entries]}


def concat_audio(work, entries):
  """All entries' audio back to back, and each one's [start, end) sample range."""
  xs = [np.load(work / 'decoded' / e['file']) for e in entries]
  bounds, start = [], 0
  for x in xs:
    bounds.append((start, start + x.size))
    start += x.size
  return np.concatenate(xs), np.array(bounds, np.int32)


def starting_point(init, widen, key):
  """(params or None, Encoder) a training run starts from: the `init` weights file's,
  made twice as wide by `fingerprinter.widen` if `widen`; or, with no `init`, random
  weights of the default encoder or, if `widen`, of one with every conv twice as wide."""
  if not init:
    return None, fingerprinter.Encoder(
        channels=fingerprinter.WIDE_CHANNELS if widen else fingerprinter.CHANNELS)
  start = fingerprinter.load_weights(init)
  if widen:
    start = fingerprinter.widen(start, key)
  return start, fingerprinter.encoder_for(start)


def train_fingerprinter(work, splits, seed, steps, batch, per_track=4, lr=5e-4, init=None,
                        retrain=False, mine_every=0, widen=False, loss='nt-xent', licenses=None,
                        whiten_excerpts=WHITEN_EXCERPTS, log=print):
  """Trains (resumably) and writes the shipped weights; returns (params, info).

  Shipped weights are reused unless `retrain`, so a rebuild embeds with the same
  fingerprinter that produced the shipped data. Their info records the tracks
  they were trained on and those tracks' `licenses` (package -> licences), so a
  rebuild that reuses them need not fetch that music to describe it. `init` (a
  weights file) makes the run a fine-tune of those weights; `widen` makes every
  conv twice as wide (`starting_point`); `loss` names one of `fingerprinter.LOSSES`.
  Training ends with `fit_whitening` on `whiten_excerpts` distorted excerpts.
  Checkpoints live in a folder named for the settings, so a run with other
  settings never resumes from them.
  """
  info_path = WEIGHTS.with_suffix('.json')
  if not retrain and WEIGHTS.exists() and info_path.exists():
    log(f'fingerprinter: using {WEIGHTS}')
    return fingerprinter.load_weights(WEIGHTS), json.loads(info_path.read_text())
  settings = {'seed': seed, 'steps': steps, 'batch': batch, 'per_track': per_track, 'lr': lr,
              **({'mine_every': mine_every} if mine_every else {}),
              **({'widen': True} if widen else {}),
              **({'loss': loss} if loss != 'nt-xent' else {}),
              'init_sha1': hashlib.sha1(pathlib.Path(init).read_bytes()).hexdigest() if init else None}
  ckpt_dir = work / 'fingerprinter' / hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  ckpt_dir.mkdir(parents=True, exist_ok=True)
  _write_json(ckpt_dir / 'settings.json', settings)
  audio, bounds = concat_audio(work, splits['splits']['fingerprinter'])
  noise, _ = concat_audio(work, splits['splits']['noise_train'])
  rirs = augment.room_impulse_responses(jax.random.key(seed + 1), 2000)  # Query RIRs use another seed.
  log(f'fingerprinter: {audio.size / SAMPLE_RATE / 60:.0f} min of music, '
      f'{noise.size / SAMPLE_RATE / 60:.0f} min of noise; checkpoints in {ckpt_dir}')
  start, model = starting_point(init, widen, jax.random.key(seed + 5))
  params, info = fingerprinter.train(
      jax.random.key(seed), audio, bounds, noise, rirs, ckpt_dir, steps, batch, per_track, lr=lr,
      init=start, model=model, mine_every=mine_every, loss=loss, log=log)
  params = fit_whitening(jax.random.key(seed + 4), params, audio, bounds, noise, rirs,
                         whiten_excerpts, log=log)
  WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
  fingerprinter.save_weights(WEIGHTS, params)
  if steps:
    info.update(batch=batch, per_track=per_track, lr=lr, loss=loss,
                **({'mine_every': mine_every} if mine_every else {}),
                **({'widened': 'every conv twice as wide as the weights fine-tuned from' if init
                               else 'every conv twice as wide as the default encoder'}
                   if widen else {}))
  fp_entries = splits['splits']['fingerprinter']
  info.update(params=fingerprinter.count_params(params), rir_seed=seed + 1,
              whitening={'excerpts': whiten_excerpts, 'reg': fingerprinter.WHITEN_REG,
                         'fit_on': 'fingerprinter training tracks, training noise and rooms'},
              trained_on={**split_summary(fp_entries),
                          'licenses': {p: (licenses or {}).get(p, [])
                                       for p in sorted({e['package'] for e in fp_entries})}})
  init_info = pathlib.Path(init).with_suffix('.json') if init else None
  if init_info is not None and init_info.exists():
    before = json.loads(init_info.read_text())
    if before.get('trained_on') == info['trained_on']:
      del before['trained_on']  # Said once, at the top.
    info['fine_tuned_from'] = before
  _write_json(info_path, info)
  return fingerprinter.load_weights(WEIGHTS), info


# A database row is the mean of its window's fingerprints at these offsets
# (samples): every eighth of a second out to the quarter second a query can land
# off the grid, so a midway excerpt finds its own audio in its row. Against R
# (run F of docs/fingerprinter.md, whitened for three offsets): 0 and ±0.125 s 71.5%, these five
# 72.2%, nine (every sixteenth) 72.4%; on the G validation slice 53.7% -> 54.7%.
DATABASE_SHIFTS = (-SAMPLE_RATE // 4, -SAMPLE_RATE // 8, 0, SAMPLE_RATE // 8, SAMPLE_RATE // 4)


def windows(x, hop=HOP, shift=0):
  """[n_windows(x.size), SEGMENT] read-only view of 1 s windows at `hop`, each
  starting `shift` samples later (earlier if negative); windows that would leave
  the signal stop at its ends instead."""
  n = n_windows(x.size)
  if shift == 0:
    return np.lib.stride_tricks.as_strided(x, (n, SEGMENT), (x.strides[0] * hop, x.strides[0]),
                                           writeable=False)
  starts = np.clip(np.arange(n) * hop + shift, 0, x.size - SEGMENT)
  return x[starts[:, None] + np.arange(SEGMENT)]


def embed_windows(params, x_ns, batch=512, normalise=True):
  """Fingerprints of many 1 s windows; a fixed batch shape keeps one compiled program."""
  out = []
  for i in range(0, x_ns.shape[0], batch):
    chunk = np.asarray(x_ns[i:i + batch], np.float32)
    padded = np.zeros((batch, SEGMENT), np.float32)
    padded[:chunk.shape[0]] = chunk
    out.append(np.asarray(fingerprinter.embed_audio(params, padded, normalise))[:chunk.shape[0]])
  return np.concatenate(out) if out else np.zeros((0, fingerprinter.DIM), np.float32)


def _groups(signals, group_rows):
  """`signals` in lists of at least `group_rows` windows (the last one may hold fewer)."""
  group, rows = [], 0
  for x in signals:
    group.append(x)
    rows += n_windows(x.size)
    if rows >= group_rows:
      yield group
      group, rows = [], 0
  if group:
    yield group


def window_fingerprints(params, signals, shifts=DATABASE_SHIFTS, normalise=True, group_rows=8192):
  """[windows of all `signals`, len(shifts), DIM]: each window's fingerprints at `shifts`.

  Signals are embedded in groups of about `group_rows` windows, so short tracks
  share batches rather than each padding its own last one; `signals` may be a
  generator, and only one group's audio is held at a time.
  """
  out = [np.stack([embed_windows(params, np.concatenate([windows(x, shift=s) for x in group]),
                                 normalise=normalise) for s in shifts], axis=1)
         for group in _groups(signals, group_rows)]
  return np.concatenate(out) if out else np.zeros((0, len(shifts), fingerprinter.DIM), np.float32)


def database_rows(f_nsd):
  """[n, DIM] unit database rows: each window's `window_fingerprints`, averaged."""
  e_nd = f_nsd.sum(axis=1)
  return e_nd / np.maximum(np.linalg.norm(e_nd, axis=1, keepdims=True), 1e-12)


def embed_tracks(work, params, entries):
  """`window_fingerprints` of every track's windows, and each window's track index."""
  windows_k = []

  def tracks():
    for e in entries:
      x = np.load(work / 'decoded' / e['file'])
      windows_k.append(n_windows(x.size))
      yield x

  f_nsd = window_fingerprints(params, tracks())
  return f_nsd, np.repeat(np.arange(len(entries), dtype=np.int32), windows_k)


def query_starts(key, bounds, n_queries):
  """Excerpts at random off-grid offsets of the tracks in `bounds` (as
  `concat_audio` gives them): start samples, true rows, distances from the true
  row's window in seconds.

  The true row is the window nearest in time to the excerpt, at most a quarter
  second away.
  """
  rows_k = np.array([n_windows(int(b - a)) for a, b in bounds])
  first_row_k = np.concatenate([[0], np.cumsum(rows_k)[:-1]])
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  starts, truth, off_grid = [], [], []
  while len(starts) < n_queries:
    k = rng.choice(len(bounds), p=rows_k / rows_k.sum())
    offset = int(rng.integers(augment.RIR_LEN, bounds[k, 1] - bounds[k, 0] - SEGMENT))
    if offset % HOP == 0:
      continue  # On-grid excerpts would align exactly with a stored window.
    row = min(int(round(offset / HOP)), rows_k[k] - 1)
    starts.append(bounds[k, 0] + offset)
    truth.append(first_row_k[k] + row)
    off_grid.append(abs(offset - row * HOP) / SAMPLE_RATE)
  return np.array(starts), np.array(truth, np.int64), np.array(off_grid)


def make_queries(key, params, audio, bounds, noise, n_queries, query_rirs_nl,
                 snr_db_range=augment.SNR_DB_RANGE, batch=500, normalise=True):
  """Fingerprints of distorted 1 s excerpts (`query_starts`), their true rows and
  their distances from the grid in seconds.

  `audio`, `bounds` are the tracks as `concat_audio` gives them, `noise` the
  noise files concatenated and `query_rirs_nl` the rooms (for queries: disjoint
  from training's). Each excerpt is reverberated, then mixed with noise.
  """
  k_pick, k_distort = jax.random.split(key)
  starts, truth_q, off_grid_q = query_starts(k_pick, bounds, n_queries)
  distort = jax.jit(functools.partial(augment.distort, snr_db_range=snr_db_range))
  e_qd = []
  for i in range(0, n_queries, batch):
    context_bt = np.stack([audio[s - augment.RIR_LEN:s + SEGMENT] for s in starts[i:i + batch]])
    noisy_bs = distort(jax.random.fold_in(k_distort, i), context_bt, noise, query_rirs_nl)
    e_qd.append(embed_windows(params, np.asarray(noisy_bs), batch, normalise))
  return np.concatenate(e_qd), truth_q, off_grid_q


def fit_whitening(key, params, audio, bounds, noise, rirs_nl, n_excerpts=WHITEN_EXCERPTS,
                  chunk=5000, log=print):
  """`fingerprinter.whiten_last_layer` fit on tracks (`concat_audio`'s `audio`,
  `bounds`), noise and rooms: database rows as the export makes them, and
  `n_excerpts` distorted excerpts as queries are made.

  Give it training audio, noise and rooms only: the queries' must stay unseen.
  """
  log(f'fingerprinter: fitting the whitening on {n_excerpts} distorted excerpts')
  rows_nsd = window_fingerprints(params, (audio[a:b] for a, b in bounds), normalise=False)
  queries, truths = [], []
  for i in tqdm(range(0, n_excerpts, chunk), desc='whitening', mininterval=5):
    q_qd, truth_q, _ = make_queries(jax.random.fold_in(key, i), params, audio, bounds, noise,
                                    min(chunk, n_excerpts - i), rirs_nl, normalise=False)
    queries.append(q_qd)
    truths.append(truth_q)
  return fingerprinter.whiten_last_layer(params, rows_nsd, np.concatenate(queries),
                                         np.concatenate(truths))


def hit_rate_at_1(query_qd, truth_q, reference_rd, distractors_nd=None, chunk=20000):
  """Fraction of queries whose best inner product is their true reference row.

  Exact search, with the distractors (if any) added to the database.
  """
  q = query_qd.astype(np.float32)
  scores_qr = q @ reference_rd.astype(np.float32).T
  top_q, score_true_q = scores_qr.argmax(axis=1), scores_qr[np.arange(len(q)), truth_q]
  hit_q = top_q == truth_q
  if distractors_nd is not None:
    for i in range(0, distractors_nd.shape[0], chunk):
      d = distractors_nd[i:i + chunk].astype(np.float32)
      hit_q &= (q @ d.T).max(axis=1) < score_true_q
  return float(hit_q.mean())


def top1_rates(query_qd, truth_q, reference_rd, reference_tracks_r):
  """Exact search over R: the top row is the true one ("hr1"), within ±1 row of it
  on the right track ("near", as the paper's systems also report), or anywhere on
  the right track ("track")."""
  top_q = (query_qd.astype(np.float32) @ reference_rd.astype(np.float32).T).argmax(1)
  track_q = reference_tracks_r[top_q] == reference_tracks_r[truth_q]
  return {'hr1': float(np.mean(top_q == truth_q)),
          'near': float(np.mean(track_q & (np.abs(top_q - truth_q) <= 1))),
          'track': float(np.mean(track_q))}


def evaluate(key, query_qd, truth_q, reference_rd, reference_tracks_r, distractors_nd,
             sizes=(1000, 10000, 30000), repeats=3):
  """HR@1 against R alone, then with random subsets of real distractors (mean, std)."""
  loose = top1_rates(query_qd, truth_q, reference_rd, reference_tracks_r)
  result = {'hr1_reference_only': loose['hr1'],
            'hr1_near_reference_only': loose['near'], 'track_reference_only': loose['track'],
            'with_distractors': []}
  for size in [s for s in sizes if s < distractors_nd.shape[0]] + [distractors_nd.shape[0]]:
    runs = []
    for r in range(repeats if size < distractors_nd.shape[0] else 1):
      idx = jax.random.choice(jax.random.fold_in(key, size * repeats + r), distractors_nd.shape[0],
                              (size,), replace=False)
      runs.append(hit_rate_at_1(query_qd, truth_q, reference_rd, distractors_nd[np.sort(np.asarray(idx))]))
    result['with_distractors'].append({'n_distractors': size, 'hr1_mean': float(np.mean(runs)),
                                       'hr1_std': float(np.std(runs)), 'repeats': len(runs)})
  return result


# Query distortions scored one at a time: (name, reverberate?, SNR range in dB).
# 200 dB leaves the noise ~1e-10 of the music, i.e. none.
CONDITIONS = (('offset only', False, (200.0, 200.0)), ('reverb only', True, (200.0, 200.0)),
              ('reverb + 0-3 dB noise', True, (0.0, 3.0)), ('reverb + 3-6 dB noise', True, (3.0, 6.0)),
              ('reverb + 6-10 dB noise', True, (6.0, 10.0)))


def hit_rates_by_condition(key, params, audio, bounds, noise, query_rirs_nl, reference_rd,
                           reference_tracks_r, n_queries=500):
  """HR@1 against R alone for the same excerpts under each of `CONDITIONS`.

  Says which distortion costs what; "near" and "track" loosen a hit to ±1 row
  of the right track, and to the right track anywhere.
  """
  dry_nl = np.zeros((1, augment.RIR_LEN), np.float32)
  dry_nl[0, 0] = 1.0
  rows = []
  for name, reverb, snr in CONDITIONS:
    q_qd, truth_q, _ = make_queries(key, params, audio, bounds, noise, n_queries,
                                    query_rirs_nl if reverb else dry_nl, snr)
    rows.append({'condition': name, 'queries': n_queries,
                 **top1_rates(q_qd, truth_q, reference_rd, reference_tracks_r)})
  return rows


def hit_rates_by_offset(query_qd, truth_q, off_grid_q, reference_rd, reference_tracks_r,
                        edges=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25)):
  """`top1_rates` against R alone for the queries in each band of distance from
  the database grid (seconds): an excerpt midway between two windows is the
  hardest to place."""
  rows = []
  for lo, hi in zip(edges[:-1], edges[1:]):
    band = (off_grid_q >= lo) & (off_grid_q < hi if hi < edges[-1] else off_grid_q <= hi)
    rows.append({'off_grid_seconds': [lo, hi], 'queries': int(band.sum()),
                 **(top1_rates(query_qd[band], truth_q[band], reference_rd, reference_tracks_r)
                    if band.any() else {})})
  return rows


def export(work, out_dir, params, splits, cat, fp_info, seed, n_queries, condition_queries=500,
           log=print):
  """Embeds every split, makes and scores the queries, writes data/ and metadata.json.

  `condition_queries` excerpts are scored under each of `CONDITIONS` besides.
  """
  out_dir.mkdir(parents=True, exist_ok=True)
  sp = splits['splits']
  arrays = {}
  # Retrained weights or other shifts never reuse old rows, nor does a cache of another layout.
  cache = (work / 'embeddings' / fingerprinter.digest(params)
           / f'rows-shifts{",".join(map(str, DATABASE_SHIFTS))}')
  cache.mkdir(parents=True, exist_ok=True)
  for name in ('reference', 'flow_train', 'distractors'):
    path = cache / f'{name}.npz'
    if not path.exists():
      log(f'export: embedding {name} ({len(sp[name])} tracks)')
      f_nsd, track_n = embed_tracks(work, params, sp[name])
      # Offset-0 fingerprints alone are the single-window rows the metadata compares against.
      with open(path.with_suffix('.tmp'), 'wb') as f:
        np.savez(f, rows=database_rows(f_nsd).astype(np.float16), track=track_n,
                 single=f_nsd[:, DATABASE_SHIFTS.index(0)].astype(np.float16))
      path.with_suffix('.tmp').replace(path)
    with np.load(path) as f:
      arrays[name], arrays[f'{name}_tracks'] = f['rows'], f['track']
  k_queries, k_eval = jax.random.split(jax.random.key(seed + 3))
  query_rirs_nl = augment.room_impulse_responses(jax.random.key(seed + 2), 2000)
  log(f'export: {n_queries} queries')
  audio, bounds = concat_audio(work, sp['reference'])
  noise, _ = concat_audio(work, sp['noise_query'])
  query_qd, truth_q, off_grid_q = make_queries(k_queries, params, audio, bounds, noise, n_queries,
                                               query_rirs_nl)
  query_qd = query_qd.astype(np.float16)
  files = {'flow_train.npy': arrays['flow_train'], 'reference.npy': arrays['reference'],
           'reference_tracks.npy': arrays['reference_tracks'].astype(np.int32),
           'queries.npy': query_qd, 'ground_truth.npy': truth_q,
           'distractors.npy': arrays['distractors']}
  for name, array in files.items():
    np.save(out_dir / name, array)
  log('export: scoring')
  scores = evaluate(k_eval, query_qd, truth_q, arrays['reference'], arrays['reference_tracks'],
                    arrays['distractors'])
  with np.load(cache / 'reference.npz') as f:  # Only R is scored with single-window rows.
    scores['single_window_rows'] = top1_rates(query_qd, truth_q, f['single'], arrays['reference_tracks'])
  scores['by_offset'] = hit_rates_by_offset(query_qd, truth_q, off_grid_q, arrays['reference'],
                                            arrays['reference_tracks'])
  scores['by_condition'] = hit_rates_by_condition(jax.random.fold_in(k_queries, 1), params, audio,
                                                  bounds, noise, query_rirs_nl, arrays['reference'],
                                                  arrays['reference_tracks'], condition_queries)
  summaries = {name: split_summary(sp[name]) for name in sp}
  licenses = dict(cat['licenses'])
  trained_on = fp_info.get('trained_on')
  if trained_on:  # The weights' own record: a build that reuses them need not fetch that music.
    summaries['fingerprinter'] = {k: trained_on[k] for k in ('tracks', 'minutes', 'files')}
    licenses.update(trained_on['licenses'])
  packages = sorted({f.split(':', 1)[0] for summary in summaries.values() for f in summary['files']})
  encoder = fingerprinter.encoder_for(params)
  metadata = {
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
          'weights': 'rfp/audio/weights/fingerprinter.npz',
          **{k: v for k, v in fp_info.items() if k != 'trained_on'}},
      'queries': {'n': int(len(truth_q)), 'source': 'reference tracks, off-grid offsets',
                  'distortion': augmentation_summary(), 'noise': 'noise_query files (disjoint from training)',
                  'rir_seed': seed + 2, 'ground_truth': 'row in reference.npy of the nearest window'},
      'retrieval': {'search': 'exact inner product', **scores},
  }
  _write_json(out_dir / 'metadata.json', metadata)
  return metadata


def features_summary():
  f = features
  return (f'{f.N_MELS} mel bins {f.F_MIN:.0f}-{f.F_MAX:.0f} Hz, n_fft {f.N_FFT}, '
          f'hop {f.FRAME_HOP / f.SAMPLE_RATE * 1000:.0f} ms, {f.N_FRAMES} frames')


def augmentation_summary():
  return {'time_offset_seconds': [-augment.MAX_OFFSET / SAMPLE_RATE, augment.MAX_OFFSET / SAMPLE_RATE],
          'snr_db': list(augment.SNR_DB_RANGE), 'rt60_seconds': list(augment.RT60_RANGE),
          'drr_db': list(augment.DRR_DB_RANGE), 'rir_seconds': augment.RIR_LEN / SAMPLE_RATE,
          'rir': 'direct path + exponentially decaying Gaussian noise'}
