"""build_data.py's settings: the build of data/ from Debian's music packages.

The defaults write the shipped data/ byte for byte. Override a field as
--config.build.KEY=VALUE; packages are comma-separated, e.g.
--config.build.music_packages=drascula-music,ufoai-music.
"""

import ml_collections
from ml_collections import config_dict

from rfp.audio import packages


def get_config():
  c = ml_collections.ConfigDict()
  c.build = ml_collections.ConfigDict(dict(
      # Downloads, decoded audio, checkpoints (several GB); build_data.py --work.
      work_dir='work',
      out_dir='data',  # build_data.py --out.
      seed=0,  # Splits, training, queries.

      # Debian packages, comma-separated.
      music_packages=','.join(packages.MUSIC_PACKAGES),  # Music of R, G, D and the fingerprinter.
      noise_packages=','.join(packages.NOISE_PACKAGES),  # Background noise.
      # Music that only trains the fingerprinter, on top of fp_minutes; '' for
      # none. Unset: packages.FINGERPRINTER_PACKAGES with retrain_fingerprinter,
      # else none (the shipped weights record their own training music).
      fp_packages=config_dict.placeholder(str),

      # Splits, by whole track. The fingerprinter's share is music of
      # music_packages; music left over once the others are full joins it.
      fp_minutes=150,
      reference_rows=12_000,
      flow_rows=55_000,
      distractor_rows=75_000,  # At most this many: the music runs out first.

      # Fingerprinter. The shipped weights (rfp/audio/weights/) are used unless
      # retrain_fingerprinter; a retrain resumes from the run with the same
      # settings under WORK_DIR/fingerprinter/ (delete it to start over).
      retrain_fingerprinter=False,  # build_data.py --retrain-fingerprinter.
      # Where a retrain writes fingerprinter.npz and .json; unset: WORK_DIR/weights.
      weights_dir=config_dict.placeholder(str),
      # A retrain writes over the shipped weights instead; build_data.py --replace-shipped-weights.
      replace_shipped_weights=False,
      fp_steps=4500,  # 0 with fp_init only refits the whitening of the last layer.
      fp_batch=64,  # Clean/distorted pairs per step.
      # Anchors per track in a batch: half of them moments, half their next
      # window, so a batch holds in-track negatives. Even; divides fp_batch.
      fp_per_track=4,
      fp_lr=5e-4,  # Peak learning rate of the cosine schedule.
      # Build each group from a moment and the moments of its track that the
      # encoder confuses it with, re-mined every this many steps; 0: random
      # moments. For fine-tuning.
      fp_mine_every=0,
      # nt-xent: SimCLR, every segment against every other; query-to-database:
      # each distorted copy against the clean segments only, as retrieval scores
      # it. For fine-tuning.
      fp_loss='nt-xent',
      fp_init=config_dict.placeholder(str),  # Fine-tune from these weights (.npz).
      # Every conv twice as wide (channels 32-512; ~3.6x the FLOPs, ~2x the time
      # per step on CPU): from scratch, or from fp_init's weights made twice as wide.
      fp_widen=False,
      # Distorted excerpts the whitening is fit on: enough that the 128x128
      # scatter is well estimated (its fit took ~2 minutes on 2 CPU cores).
      whiten_excerpts=100_000,

      # Export.
      queries=2000,  # Distorted excerpts of R, scored and shipped.
      condition_queries=500,  # More excerpts, scored under each distortion on its own.
      sequence_queries=2000,  # Distorted 10 s excerpts of R (19 segments), scored and shipped.
  ))
  return c
