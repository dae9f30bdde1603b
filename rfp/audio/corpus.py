"""Real music from Debian game-soundtrack packages: fetch, extract, decode, de-duplicate.

A track is one audio file (possibly a member of a .pk3/.zip archive inside a
package); it is decoded once to 8 kHz mono float32 and cached as .npy.
"""

import dataclasses
import fnmatch
import io
import pathlib
import re
import shutil
import subprocess
import tempfile
import warnings
import zipfile

import numpy as np

from rfp.audio.features import LOOP_CORR, SAMPLE_RATE, mel_correlations
from rfp.errors import InputError

# Game packages also ship sound effects; music lives under paths like these.
MUSIC_PATTERN = (r'music|cdtracks|drascula/audio/track|fretsonfire/data/songs/.*/song\.ogg'
                 r'|games/zaz/mus\d|frozen-bubble/snd/[\w-]*zik|marsshooter/audio/|pushover/themes/'
                 r'|wordwarvi/sounds/|wastesedge/audio/|noiz2sa/sounds/stg|ironseed/sound/'
                 r'|rafkill/data/|open-invaders/|penguin-command/sound/|njam/data/|criticalmass/'
                 r'|dodgindiamond2/|ballz/|cuyo/sounds/|ri-li/sounds/|tuxtype/sounds/game')
NOISE_PATTERN = r'audio/ambient/(weather|dayscape|water|building)|asterisk/sounds/'
MODULE_SUFFIXES = ('.xm', '.it', '.mod', '.s3m', '.stm')  # Tracker music: notes and samples.
AUDIO_SUFFIXES = ('.ogg', '.opus', '.mp3', '.flac', '.wav') + MODULE_SUFFIXES
ARCHIVE_SUFFIXES = ('.pk3', '.zip')
MIN_MUSIC_SECONDS = 30.0      # Shorter files are jingles and stingers, not tracks.
SILENCE_RMS = 1e-4            # About -80 dBFS.


@dataclasses.dataclass(frozen=True)
class Source:
  """An audio file inside an extracted package; `member` is set for archive members."""
  package: str
  path: str
  member: str = ''

  @property
  def name(self):
    return f'{self.path}!{self.member}' if self.member else self.path


def fetch(package, cache_dir):
  """The package's .deb in `cache_dir`, downloaded with apt-get unless already there."""
  cache_dir = pathlib.Path(cache_dir)
  cache_dir.mkdir(parents=True, exist_ok=True)
  found = sorted(cache_dir.glob(f'{package}_*.deb'))
  if found:
    return found[-1]
  result = subprocess.run(['apt-get', 'download', package], cwd=cache_dir,
                          capture_output=True, text=True)
  found = sorted(cache_dir.glob(f'{package}_*.deb'))
  if result.returncode != 0 or not found:
    message = (result.stderr.strip().splitlines() or ['no .deb was written'])[-1]
    raise InputError(f'apt-get download {package} failed: {message} '
                     f'(hint: run `apt-get update`, or check the name with `apt-cache policy {package}`)')
  return found[-1]


def extract(deb, dest):
  """Unpacks a .deb into `dest` once; a marker file makes re-runs skip it."""
  dest = pathlib.Path(dest)
  marker = dest / '.extracted'
  if not marker.exists():
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(['dpkg-deb', '-x', str(deb), str(dest)], check=True)
    marker.touch()
  return dest


def copyright_licenses(root, package, sources=()):
  """Licences from the package's Debian copyright file that cover `sources`.

  Machine-readable (DEP-5) files: the `License:` of the last `Files:` stanza
  matching each source, as DEP-5 specifies; patterns are matched as path suffixes
  because they name upstream paths, not installed ones. Free-form files: the
  lines that state the licence.
  """
  path = pathlib.Path(root) / 'usr/share/doc' / package / 'copyright'
  if not path.exists():
    return []
  text = path.read_text(errors='replace')
  stanzas = []
  for block in re.split(r'\n\s*\n', text):
    files = re.search(r'^Files:(.*(?:\n[ \t].*)*)', block, re.MULTILINE)
    license_name = re.search(r'^License:\s*(\S.*)$', block, re.MULTILINE)
    if files and license_name:
      stanzas.append((files.group(1).split(), license_name.group(1).strip()))
  if not stanzas:
    return _free_form_licenses(text)
  found = set()
  for source in sources:
    name = source.name.replace('!', '/')
    matches = [lic for patterns, lic in stanzas
               if any(p == '*' or fnmatch.fnmatch(name, '*/' + p.lstrip('./')) for p in patterns)]
    if matches:
      found.add(matches[-1])
  return sorted(found)


# Free-form copyright files state these licences in their standard wording.
_LICENSE_WORDING = {
    'Expat': r'Permission is hereby granted, free of charge, to any person obtaining a copy',
    'ISC': r'Permission to use, copy, modify, and(?:/or)? distribute this software for any purpose '
           r'with or without fee is hereby granted',
    'CC-BY-3.0': r'Creative Commons Attribution 3\.0',
    'CC0-1.0': r'\bCC0\b',
}


def _free_form_licenses(text):
  """The licences a free-form copyright file grants, by their standard wording."""
  flat = ' '.join(text.split())
  found = {name for name, wording in _LICENSE_WORDING.items() if re.search(wording, flat)}
  for match in re.finditer(r'GNU General Public License,? (?:as published by the Free Software '
                           r'Foundation;? )?(?:either )?version (\d)', flat):
    later = re.match(r'[^.]{0,40}at your option\)?,? any later version', flat[match.end():])
    found.add(f'GPL-{match.group(1)}' + ('+' if later else ''))
  if re.search(r'CREATIVE COMMONS PUBLIC LICENSE', flat) and 'Attribution, ShareAlike' in flat:
    found.add('CC-BY-SA (full text in the copyright file)')
  return sorted(found) or ['see the copyright file']


def find_sources(root, package, pattern):
  """Audio files under `root` (and inside its archives) whose path matches `pattern`."""
  regex = re.compile(pattern, re.IGNORECASE)
  root = pathlib.Path(root)
  sources = []
  for path in sorted(root.rglob('*')):
    rel = str(path.relative_to(root))
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES and regex.search(rel):
      sources.append(Source(package, rel))
    elif suffix in ARCHIVE_SUFFIXES and path.is_file():
      with zipfile.ZipFile(path) as z:
        for member in z.namelist():
          if member.lower().endswith(AUDIO_SUFFIXES) and regex.search(member):
            sources.append(Source(package, rel, member))
  return sources


def read_bytes(root, source):
  path = pathlib.Path(root) / source.path
  if source.member:
    with zipfile.ZipFile(path) as z:
      return z.read(source.member)
  return path.read_bytes()


def _ffmpeg_decode(source, data, sr):
  result = subprocess.run(
      ['ffmpeg', '-v', 'error', '-nostdin', '-i', source, '-ac', '1', '-ar', str(sr),
       '-f', 'f32le', 'pipe:1'], input=data, capture_output=True)
  if result.returncode != 0:
    raise ValueError(result.stderr.decode(errors='replace').strip().splitlines()[-1:] or 'ffmpeg failed')
  return np.frombuffer(result.stdout, np.float32).copy()


def require_ffmpeg():
  """Raises InputError unless ffmpeg is on PATH. The packages' music needs it
  (Opus, MP3, tracker modules), and decoding every file with the one decoder
  keeps a rebuild byte for byte the same."""
  if not shutil.which('ffmpeg'):
    raise InputError('ffmpeg: not found on PATH; the music of the packages decodes with it '
                     '(hint: apt-get install -y ffmpeg, then run again)')


def decode(data, sr=SAMPLE_RATE, suffix=''):
  """Encoded audio bytes -> mono float32 at `sr`. Raises ValueError if unreadable.

  ffmpeg reads every format the packages use (Opus, MP3 and, through libopenmpt,
  tracker modules included); without it, soundfile covers WAV/FLAC/Vorbis, which
  is what the tests write. `suffix` is the file's, e.g. '.xm'.
  """
  if shutil.which('ffmpeg'):
    if suffix not in MODULE_SUFFIXES:
      return _ffmpeg_decode('pipe:0', data, sr)
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:  # libopenmpt needs a seekable file.
      f.write(data)
      f.flush()
      return _ffmpeg_decode(f.name, None, sr)
  import soundfile
  import scipy.signal
  try:
    x, file_sr = soundfile.read(io.BytesIO(data), dtype='float32', always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
    raise ValueError(str(e)) from e
  x = x.mean(axis=1)
  g = np.gcd(sr, file_sr)
  return scipy.signal.resample_poly(x, sr // g, file_sr // g).astype(np.float32)


def load(data, name, min_seconds=0.0, sr=SAMPLE_RATE):
  """Decoded audio, or None with a warning naming `name` if unreadable, silent or short."""
  try:
    x = decode(data, sr, pathlib.PurePath(name).suffix.lower())
  except ValueError as e:
    warnings.warn(f'skipping unreadable audio file {name}: {e}')
    return None
  if x.size == 0 or not np.isfinite(x).all() or np.sqrt(np.mean(x**2)) < SILENCE_RMS:
    warnings.warn(f'skipping silent audio file {name}')
    return None
  if x.size < min_seconds * sr:
    return None  # A jingle: expected, not worth a warning.
  return x


def self_repetition(x_ns, min_corr=LOOP_CORR):
  """Fraction of 1 s windows (rows of log-mel features) that recur elsewhere in the track.

  Game music loops: a looped section is the same audio twice, so an excerpt of it
  has no single true location. Neighbours (±1 window, overlapping audio) don't count.
  """
  corr_nn = mel_correlations(x_ns)
  n = np.arange(x_ns.shape[0])
  for k in (-1, 0, 1):
    corr_nn[n, np.clip(n + k, 0, n.size - 1)] = -1.0
  return float(np.mean(corr_nn.max(axis=1) > min_corr)) if n.size > 3 else 0.0


def envelope_signature(x, sr=SAMPLE_RATE, block_seconds=0.5):
  """Z-normalised log-energy per 0.5 s block: robust to gain, codec and resampling."""
  block = int(sr * block_seconds)
  n = x.size // block
  energy_db = 10.0 * np.log10(np.mean(x[:n * block].reshape(n, block) ** 2, axis=1) + 1e-10)
  return (energy_db - energy_db.mean()) / (energy_db.std() + 1e-6)


def spectral_signature(x, n_bands=32):
  """Unit-norm, mean-removed long-term log spectrum: the track's overall timbre."""
  frames = x[: x.size // 1024 * 1024].reshape(-1, 1024)
  power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(1024), axis=1)) ** 2, axis=0)
  bands = np.log10(np.array([b.mean() for b in np.array_split(power[1:], n_bands)]) + 1e-12)
  bands -= bands.mean()
  return bands / (np.linalg.norm(bands) + 1e-12)


def is_duplicate(sig_a, sig_b, max_lag=40, min_envelope_corr=0.9, min_spectral_cos=0.9):
  """Near-identical tracks: envelopes match at some lag (±20 s) and timbres agree.

  Durations may differ (fades, remasters): correlation is over the overlap.
  """
  (env_a, spec_a), (env_b, spec_b) = sig_a, sig_b
  if float(spec_a @ spec_b) < min_spectral_cos:
    return False
  best = -1.0
  for lag in range(-max_lag, max_lag + 1):
    a = env_a[max(lag, 0):]
    b = env_b[max(-lag, 0):]
    n = min(a.size, b.size)
    if n < 40:
      continue
    best = max(best, _correlation(a[:n], b[:n]))
  return best >= min_envelope_corr


def _correlation(a, b):
  """Pearson correlation; 0 when either side is constant (no shape to compare)."""
  a, b = a - a.mean(), b - b.mean()
  denom = np.sqrt((a @ a) * (b @ b))
  return float(a @ b / denom) if denom > 1e-9 else 0.0


def deduplicate(signatures, durations):
  """Indices to keep: the first of each group of near-duplicates, by input order."""
  keep = []
  for i, sig in enumerate(signatures):
    if not any(abs(durations[i] - durations[j]) < 0.5 * max(durations[i], durations[j])
               and is_duplicate(sig, signatures[j]) for j in keep):
      keep.append(i)
  return keep
