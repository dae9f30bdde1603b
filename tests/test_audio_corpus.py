"""Decoding, archives, licences and de-duplication of the Debian music."""

import shutil
import zipfile

import numpy as np
import pytest

from rfp.audio import corpus
from rfp.audio.features import SAMPLE_RATE
from audio_helpers import music, wav_bytes


def test_load_decodes_and_resamples_wav_and_ogg():
  x = music(2.0, sr=16000)
  for fmt in ('WAV', 'OGG'):
    y = corpus.load(wav_bytes(x, 16000, fmt), f'song.{fmt.lower()}')
    assert y.dtype == np.float32 and abs(y.size - 2 * SAMPLE_RATE) <= 0.02 * SAMPLE_RATE  # Codec padding.
    # Notes sit below 4 kHz, so resampling to 8 kHz keeps their energy.
    np.testing.assert_allclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(x**2)), rtol=0.1)


def _tracker_module():
  """A 4-channel ProTracker module: one pattern of 64 rows whose first channel
  plays a square-wave sample at C-3 on every fourth row (7.68 s at speed 6, 125 BPM)."""
  sample = np.tile(np.r_[np.full(16, 60), np.full(16, -60)].astype(np.int8), 64)
  header = b'test module'.ljust(20, b'\0')
  header += b'square'.ljust(22, b'\0') + (sample.size // 2).to_bytes(2, 'big') + bytes([0, 64])
  header += (0).to_bytes(2, 'big') + (sample.size // 2).to_bytes(2, 'big')  # Loops.
  header += (b'\0' * 22 + bytes([0, 0, 0, 0]) + bytes([0, 0, 0, 1])) * 30
  header += bytes([1, 127]) + bytes(128) + b'M.K.'
  pattern = bytearray(64 * 4 * 4)  # [row, channel, 4 bytes]
  for row in range(0, 64, 4):
    pattern[row * 16:row * 16 + 4] = bytes([0x01, 0xAC, 0x10, 0x00])  # Sample 1, period 428.
  return header + bytes(pattern) + sample.tobytes()


@pytest.mark.skipif(not shutil.which('ffmpeg'), reason='tracker modules decode through ffmpeg')
def test_load_renders_tracker_modules():
  y = corpus.load(_tracker_module(), 'pkg:music/song.mod')
  assert y is not None and 7.6 < y.size / SAMPLE_RATE < 8.0  # 7.68 s and a release tail.
  assert np.sqrt(np.mean(y**2)) > 100 * corpus.SILENCE_RMS


def test_silent_and_unreadable_files_are_skipped_with_a_warning_naming_them():
  with pytest.warns(UserWarning, match='silent.*quiet.wav'):
    assert corpus.load(wav_bytes(np.zeros(SAMPLE_RATE, np.float32)), 'quiet.wav') is None
  with pytest.warns(UserWarning, match='unreadable.*broken.ogg'):
    assert corpus.load(b'OggS this is not audio', 'broken.ogg') is None


def test_find_sources_looks_inside_archives_and_filters_by_path(tmp_path):
  (tmp_path / 'usr/music').mkdir(parents=True)
  (tmp_path / 'usr/sfx').mkdir(parents=True)
  (tmp_path / 'usr/music/a.ogg').write_bytes(b'')
  (tmp_path / 'usr/sfx/boom.wav').write_bytes(b'')
  with zipfile.ZipFile(tmp_path / 'usr/data.pk3', 'w') as z:
    z.writestr('music/b.wav', wav_bytes(music(1.0)))
    z.writestr('textures/c.png', b'')
  (tmp_path / 'usr/music/tune.XM').write_bytes(b'')
  (tmp_path / 'usr/music/notes.mid').write_bytes(b'')
  sources = corpus.find_sources(tmp_path, 'pkg', 'music')
  assert [s.name for s in sources] == ['usr/data.pk3!music/b.wav', 'usr/music/a.ogg', 'usr/music/tune.XM']
  assert corpus.read_bytes(tmp_path, sources[0]) == wav_bytes(music(1.0))


def test_deduplicate_drops_a_quieter_shifted_copy_and_keeps_other_tracks():
  a, b = music(60.0, 0), music(60.0, 1)
  copy = 0.5 * np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), a])[:a.size]
  tracks = [a, b, copy]
  sigs = [(corpus.envelope_signature(x), corpus.spectral_signature(x)) for x in tracks]
  assert corpus.deduplicate(sigs, [x.size / SAMPLE_RATE for x in tracks]) == [0, 1]


def test_copyright_licenses_follow_dep5_stanzas_and_free_form_wording(tmp_path):
  doc = tmp_path / 'usr/share/doc/pkg'
  doc.mkdir(parents=True)
  (doc / 'copyright').write_text(
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n'
      'Files: *\nLicense: GPL-3+\n\nFiles: data/music/*\n sounds/*.ogg\nLicense: CC-BY-SA-3.0\n text\n')
  music = corpus.Source('pkg', 'usr/share/game/data.pk3', 'data/music/a.ogg')
  code = corpus.Source('pkg', 'usr/share/game/other.wav')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [music]) == ['CC-BY-SA-3.0']
  assert corpus.copyright_licenses(tmp_path, 'pkg', [music, code]) == ['CC-BY-SA-3.0', 'GPL-3+']
  (doc / 'copyright').write_text('This program is free software; you can redistribute it under the terms\n'
                                 'of the GNU General Public License as published by the Free Software\n'
                                 'Foundation; either version 2 of the License, or (at your option) any later version.\n')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [code]) == ['GPL-2+']
  (doc / 'copyright').write_text('Permission is hereby granted, free of charge, to any person obtaining\n'
                                 'a copy of this software.\n\nSome files belonging to the game content are '
                                 'licensed under the\n Creative Commons Attribution 3.0 license or the CC0 license.\n')
  assert corpus.copyright_licenses(tmp_path, 'pkg', [code]) == ['CC-BY-3.0', 'CC0-1.0', 'Expat']
