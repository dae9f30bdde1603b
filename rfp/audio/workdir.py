"""What the build's stages share in the work folder: decoded tracks, and JSON
written atomically (an interrupted stage never leaves half a file to resume
from) in the layout the shipped metadata.json and fingerprinter.json have
(indent 1, no final newline), so a rebuild matches them byte for byte."""

import functools

import numpy as np

from rfp import files

write_json = functools.partial(files.write_json, indent=1, end='')


def track_audio(work, entry):
  """A catalog entry's decoded audio: 8 kHz mono float32."""
  return np.load(work / 'decoded' / entry['file'])


def concat_audio(work, entries):
  """All entries' audio back to back, and each one's [start, end) sample range."""
  xs = [track_audio(work, e) for e in entries]
  bounds, start = [], 0
  for x in xs:
    bounds.append((start, start + x.size))
    start += x.size
  return np.concatenate(xs), np.array(bounds, np.int32)
