"""Synthetic audio and small build inputs the tests of rfp/audio share."""

import io

import jax
import numpy as np
import soundfile

from rfp import cli
from rfp.audio import augment, fingerprinter, splits
from rfp.audio.features import SAMPLE_RATE
from conftest import ROOT


def music(seconds, seed=0, sr=SAMPLE_RATE):
  """A few seconds of random notes with an envelope: enough structure to fingerprint."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  note = (t * 4).astype(int)
  pitch, loudness = rng.uniform(200, 3000, size=(2, note[-1] + 1))
  return (0.3 * np.sin(2 * np.pi * pitch[note] * t) * loudness[note] / 3000).astype(np.float32)


def wav_bytes(x, sr=SAMPLE_RATE, fmt='WAV'):
  buf = io.BytesIO()
  soundfile.write(buf, x, sr, format=fmt)
  return buf.getvalue()


def tiny_training_inputs():
  """(key, audio, track bounds, noise, rooms) of two 4 s tracks, and a tiny encoder."""
  audio = np.concatenate([music(4.0, 0), music(4.0, 1)])
  bounds = np.array([[0, 4 * SAMPLE_RATE], [4 * SAMPLE_RATE, 8 * SAMPLE_RATE]])
  noise = np.random.default_rng(0).normal(size=2 * SAMPLE_RATE).astype(np.float32)
  rirs = augment.room_impulse_responses(jax.random.key(0), 4)
  return (jax.random.key(0), audio, bounds, noise, rirs), fingerprinter.Encoder(channels=(4, 8), hidden=16)


def catalog_of(work, tracks):
  """The catalog of these (name, audio, fingerprinter_only) music tracks plus two
  noise files, their audio decoded under `work`; fingerprinter-only music comes
  from package 'fp-pkg', the rest from 'pkg'."""
  (work / 'decoded').mkdir(parents=True, exist_ok=True)
  entries = []
  for name, x, only in tracks + [('noise0', music(5.0, 90), False), ('noise1', music(5.0, 91), False)]:
    np.save(work / 'decoded' / f'{name}.npy', x)
    entries.append({'package': 'fp-pkg' if only else 'pkg', 'source': name, 'file': f'{name}.npy', 'fingerprinter_only': only,
                    'kind': 'noise' if name.startswith('noise') else 'music', 'seconds': x.size / SAMPLE_RATE})
  return {'entries': entries}


def split_of(work, tracks, seconds=60.0, rows=150, distractor_rows=10_000):
  """`splits.split` of `catalog_of(work, tracks)`."""
  plan = splits.SplitPlan(seed=0, fingerprinter_seconds=seconds, reference_rows=rows, flow_rows=rows,
                          distractor_rows=distractor_rows)
  return splits.split(work, catalog_of(work, tracks), plan, log=lambda m: None)


def build_config(**fields):
  """configs/data.py's build section with these fields overridden."""
  return cli.load_config(ROOT / 'configs' / 'data.py', [f'build.{k}={v}' for k, v in fields.items()]).build
