"""De-duplicated music split by whole track."""

import json

import numpy as np

from rfp.audio.features import SAMPLE_RATE
from audio_helpers import music, split_of


def test_fingerprinter_only_music_joins_that_split_and_leaves_the_others_as_they_were(tmp_path):
  main = [(f'main{i}', music(60.0, i), False) for i in range(8)]
  copy = 0.5 * np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), main[3][1]])[:main[3][1].size]
  extra = [('extra0', music(60.0, 20), True), ('copy_of_main3', copy, True), ('extra1', music(60.0, 21), True)]
  before = split_of(tmp_path / 'before', main)
  after = split_of(tmp_path / 'after', main + extra)
  names = lambda result, split: [e['source'] for e in result['splits'][split]]
  for split in ('reference', 'flow_train', 'distractors', 'noise_train', 'noise_query'):
    assert names(after, split) == names(before, split) and names(before, split)
  assert names(after, 'fingerprinter') == names(before, 'fingerprinter') + ['extra0', 'extra1']
  assert after['duplicates_dropped'] == ['fp-pkg:copy_of_main3']
  assert after['distinct_tracks'] == before['distinct_tracks'] + 2 == 10


def test_music_left_over_once_the_distractors_are_full_trains_the_fingerprinter(tmp_path):
  main = [(f'main{i}', music(60.0, i), False) for i in range(8)]  # 119 rows each.
  roomy = split_of(tmp_path / 'roomy', main)
  capped = split_of(tmp_path / 'capped', main, distractor_rows=100)
  names = lambda result, split: [e['source'] for e in result['splits'][split]]
  for split in ('reference', 'flow_train', 'noise_train', 'noise_query'):
    assert names(capped, split) == names(roomy, split)
  assert len(names(roomy, 'distractors')) == 2
  assert names(capped, 'distractors') == names(roomy, 'distractors')[:1]
  assert names(capped, 'fingerprinter') == names(roomy, 'fingerprinter') + names(roomy, 'distractors')[1:]


def test_splits_are_remade_for_another_catalog_and_read_back_for_the_same(tmp_path):
  main = [(f'main{i}', music(60.0, i), False) for i in range(8)]
  first = split_of(tmp_path, main)
  written = (tmp_path / 'splits.json').stat().st_mtime_ns
  assert split_of(tmp_path, main) == first and (tmp_path / 'splits.json').stat().st_mtime_ns == written
  more = split_of(tmp_path, main + [('extra0', music(60.0, 20), True)])
  assert [e['source'] for e in more['splits']['fingerprinter']][-1] == 'extra0'
  assert json.loads((tmp_path / 'splits.json').read_text()) == more
