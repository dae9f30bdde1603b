"""Finding an evaluation's synthetic rows on disk, or where to sample them."""

from rfp import synthetic
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
