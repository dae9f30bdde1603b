"""Finding an evaluation's synthetic rows on disk, or where to sample them."""

import json

from rfp import synthetic, temporal
from test_sample_folder import make_folder


def test_find_reuses_a_complete_folder_of_the_best_checkpoint(tmp_path):
  (tmp_path / 'ckpt' / 'best' / '7').mkdir(parents=True)
  make_folder(tmp_path / 'samples', n=10, step=7)
  folder, shards, _ = synthetic.find(tmp_path, needed=20, minimum=10, seed=0)
  assert folder == tmp_path / 'samples' and len(shards) == 2
  # Too few rows: sample the needed ones beside it, never over it.
  folder, shards, _ = synthetic.find(tmp_path, needed=40, minimum=20, seed=0)
  assert folder == tmp_path / 'samples-7-40-0' and shards is None


def test_a_folder_of_an_older_checkpoint_is_not_reused(tmp_path):
  (tmp_path / 'ckpt' / 'best' / '9').mkdir(parents=True)
  make_folder(tmp_path / 'samples', n=10, step=7)
  folder, shards, _ = synthetic.find(tmp_path, needed=10, minimum=10, seed=0)
  assert shards is None and folder == tmp_path / 'samples-9-10-0'


def test_a_track_folder_of_an_older_generator_is_not_reused(tmp_path):
  (tmp_path / 'ckpt' / 'best' / '7').mkdir(parents=True)
  for name, generator in (('samples-tracks', 'ar-noise/1'), ('samples-tracks-7-10-0', 'ar-noise/1')):
    manifest = make_folder(tmp_path / name, n=10, step=7)
    (tmp_path / name / 'manifest.json').write_text(
        json.dumps({**manifest, 'tracks': {'generator': generator}}))
  folder, shards, _ = synthetic.find(tmp_path, needed=10, minimum=10, seed=0, tracks=True)
  assert shards is None
  assert folder == tmp_path / f'samples-tracks-7-10-0-{temporal.GENERATOR.replace("/", ".")}'
  # Of the current generator: reused.
  (tmp_path / 'samples-tracks' / 'manifest.json').write_text(
      json.dumps({**manifest, 'tracks': {'generator': temporal.GENERATOR}}))
  folder, shards, _ = synthetic.find(tmp_path, needed=10, minimum=10, seed=0, tracks=True)
  assert folder == tmp_path / 'samples-tracks' and len(shards) == 2
