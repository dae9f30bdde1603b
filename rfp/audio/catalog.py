"""Stage 1, catalog: every music track and noise file of the packages, decoded
once to 8 kHz mono .npy under WORK/decoded/ and listed in WORK/catalog.json."""

import concurrent.futures
import hashlib
import json

import numpy as np

from rfp.audio import corpus, packages
from rfp.audio.features import SAMPLE_RATE
from rfp.audio.workdir import write_json


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


def catalog(work, music_packages=packages.MUSIC_PACKAGES, noise_packages=packages.NOISE_PACKAGES,
            fingerprinter_packages=packages.FINGERPRINTER_PACKAGES, log=print):
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
  write_json(out, result)
  return result
