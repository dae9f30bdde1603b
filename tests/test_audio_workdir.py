"""The work folder's shared files: decoded tracks and the JSON the stages write."""

import json

import numpy as np

from rfp.audio.workdir import concat_audio, write_json
from conftest import ROOT


def test_json_is_written_as_the_shipped_metadata_is_and_leaves_no_temporary_file(tmp_path):
  shipped = (ROOT / 'data' / 'metadata.json').read_text()
  write_json(tmp_path / 'metadata.json', json.loads(shipped))
  assert (tmp_path / 'metadata.json').read_text() == shipped  # A rebuild can match it byte for byte.
  assert [p.name for p in tmp_path.iterdir()] == ['metadata.json']


def test_concatenated_tracks_keep_each_ones_sample_range(tmp_path):
  (tmp_path / 'decoded').mkdir()
  tracks = [np.arange(n, dtype=np.float32) + 10 * n for n in (3, 5, 2)]
  for i, x in enumerate(tracks):
    np.save(tmp_path / 'decoded' / f'{i}.npy', x)
  audio, bounds = concat_audio(tmp_path, [{'file': f'{i}.npy'} for i in range(3)])
  np.testing.assert_array_equal(bounds, [[0, 3], [3, 8], [8, 10]])
  for x, (a, b) in zip(tracks, bounds):
    np.testing.assert_array_equal(audio[a:b], x)
