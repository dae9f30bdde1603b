"""Pipeline stages, each writing one artefact under the work dir and skipping if it exists.

catalog -> split -> fingerprinter -> export. Every stage reads the previous
one's files, so a re-run after an interruption resumes at the first missing one.
"""

import concurrent.futures
import hashlib
import json
import pathlib
import warnings

import jax
import numpy as np

from rfp.audio import augment, corpus, fingerprinter
from rfp.audio.features import HOP, SAMPLE_RATE, SEGMENT

WEIGHTS = pathlib.Path(__file__).parent / 'weights' / 'fingerprinter.npz'


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
            log=print):
  """Fetches, extracts and decodes every music track and noise file; lists them."""
  out = work / 'catalog.json'
  if out.exists():
    return json.loads(out.read_text())
  cache = work / 'decoded'
  cache.mkdir(parents=True, exist_ok=True)
  entries, licenses = [], {}
  jobs = [(p, 'music', corpus.MUSIC_PATTERN, corpus.MIN_MUSIC_SECONDS) for p in music_packages]
  jobs += [(p, 'noise', corpus.NOISE_PATTERN, 0.0) for p in noise_packages]
  roots = {}
  for package in dict.fromkeys(p for p, *_ in jobs):
    roots[package] = corpus.extract(corpus.fetch(package, work / 'debs'), work / 'extract' / package)
    licenses[package] = corpus.copyright_licenses(roots[package], package)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:  # ffmpeg runs out of process.
    for package, kind, pattern, min_seconds in jobs:
      sources = corpus.find_sources(roots[package], package, pattern)
      results = pool.map(lambda s: _decode_to_cache(roots[package], s, cache, min_seconds), sources)
      n = 0
      for source, (path, size) in zip(sources, results):
        if path is not None:
          entries.append({'package': package, 'source': source.name, 'kind': kind,
                          'file': path.name, 'seconds': round(size / SAMPLE_RATE, 2)})
          n += 1
      log(f'catalog: {package}: {n} {kind} files of {len(sources)} matching')
  result = {'entries': entries, 'licenses': licenses}
  _write_json(out, result)
  return result


def split(work, cat, seed, fp_seconds, n_reference_rows, n_flow_rows, n_distractor_rows, log=print):
  """De-duplicates music, then assigns whole tracks to disjoint splits in a seeded order."""
  out = work / 'splits.json'
  if out.exists():
    return json.loads(out.read_text())
  music = [e for e in cat['entries'] if e['kind'] == 'music']
  signatures = []
  for e in music:
    x = np.load(work / 'decoded' / e['file'])
    signatures.append((corpus.envelope_signature(x), corpus.spectral_signature(x)))
  keep = corpus.deduplicate(signatures, [e['seconds'] for e in music])
  dropped = [music[i]['package'] + ':' + music[i]['source'] for i in set(range(len(music))) - set(keep)]
  log(f'split: {len(music)} music tracks, {len(keep)} distinct after de-duplication')
  rng = np.random.default_rng(seed)
  order = [music[i] for i in rng.permutation(keep)]
  rows = {e['file']: n_windows(int(e['seconds'] * SAMPLE_RATE)) for e in order}
  targets = [('fingerprinter', fp_seconds * 2), ('reference', n_reference_rows),
             ('flow_train', n_flow_rows), ('distractors', n_distractor_rows)]
  splits = {name: [] for name, _ in targets}
  filled = dict.fromkeys(splits, 0)
  for e in order:
    # Fill each split in turn; rows from the fingerprinter split are seconds * 2.
    name = next((n for n, t in targets if filled[n] < t), None)
    if name is None:
      break
    splits[name].append(e)
    filled[name] += rows[e['file']]
  noise = [e for e in cat['entries'] if e['kind'] == 'noise']
  noise = [noise[i] for i in rng.permutation(len(noise))]
  splits['noise_train'], splits['noise_query'] = noise[::2], noise[1::2]
  result = {'splits': splits, 'rows': filled, 'distinct_tracks': len(keep), 'duplicates_dropped': sorted(dropped)}
  for name, items in splits.items():
    log(f'split: {name}: {len(items)} files, {sum(e["seconds"] for e in items) / 60:.0f} min')
  _write_json(out, result)
  return result


def concat_audio(work, entries, context=0):
  """All entries' audio back to back, and each one's [start, end) sample range."""
  xs = [np.load(work / 'decoded' / e['file']) for e in entries]
  bounds, start = [], 0
  for x in xs:
    bounds.append((start, start + x.size))
    start += x.size
  return np.concatenate(xs), np.array(bounds, np.int32)


def train_fingerprinter(work, splits, seed, steps, batch, log=print):
  """Trains (resumably) and writes the shipped weights; returns (params, info)."""
  info_path = work / 'fingerprinter' / 'info.json'
  if WEIGHTS.exists() and info_path.exists():
    return fingerprinter.load_weights(WEIGHTS), json.loads(info_path.read_text())
  audio, bounds = concat_audio(work, splits['splits']['fingerprinter'])
  noise, _ = concat_audio(work, splits['splits']['noise_train'])
  rirs = augment.room_impulse_responses(jax.random.key(seed + 1), 2000)  # Query RIRs use another seed.
  log(f'fingerprinter: {audio.size / SAMPLE_RATE / 60:.0f} min of music, '
      f'{noise.size / SAMPLE_RATE / 60:.0f} min of noise')
  params, info = fingerprinter.train(jax.random.key(seed), audio, bounds, noise, rirs,
                                     work / 'fingerprinter', steps, batch, log=log)
  WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
  fingerprinter.save_weights(WEIGHTS, params)
  info.update(batch=batch, params=fingerprinter.count_params(params), rir_seed=seed + 1)
  _write_json(info_path, info)
  return params, info
