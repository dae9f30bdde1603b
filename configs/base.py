"""The paper's model (Table 1) and training (Sec. 2.5). Other configs override it.

Evaluation settings follow the NAFP protocol (reference notes, Sec. 2) and point
at the project's shipped data; system configs replace them with their own.
"""

import ml_collections
from ml_collections import config_dict


def get_config():
  c = ml_collections.ConfigDict()
  c.name = 'base'

  # The fingerprinting system whose embeddings are modelled (for reports and
  # for comparing against its published normalisation statistics).
  c.system = ml_collections.ConfigDict(dict(
      name='rfp-reference', input='.npy [rows, 128] float16, unit-norm',
      train_mean=config_dict.placeholder(float), train_std=config_dict.placeholder(float)))

  c.data = ml_collections.ConfigDict(dict(
      train='data/flow_train.npy',  # [rows, dim] .npy or NAFP-style NAME.mm + NAME_shape.npy.
      # Track id of each training row (rows of a track consecutive); None: unknown.
      train_tracks='data/flow_train_tracks.npy',
      norm='per_dim',  # 'per_dim', or 'scalar' (one mean/std over all values, as the reference code).
      val_fraction=0.05,
      val_max=10_000,
      # Validation holds out blocks of this many consecutive rows: whole
      # tracks (a few minutes each at 0.5 s hop), as every system stores a
      # track's windows consecutively.
      val_block_rows=2048,
      # Real rows that held-out rows are compared with (the probe criterion)
      # lie at least this far from them: other tracks, not the same one.
      val_guard_rows=2048,
      in_memory_max_gb=4.0,  # Larger files stream through a shuffle buffer.
      shuffle_buffer_rows=1 << 18,
  ))

  c.model = ml_collections.ConfigDict(dict(
      # The embeddings' dimension; None: read from data.train (and saved so in config.json).
      dim=config_dict.placeholder(int),
      width=768, depth=12, hidden=3072, time_dim=32,
      ffn='gelu',  # 'gelu' (paper) or 'swiglu' (reference code's later versions).
      cond='all',  # adaLN in 'all' blocks, or only the 'first'.
      dtype='float32',  # 'bfloat16' runs the matmuls in bf16 (parameters stay float32).
  ))

  c.train = ml_collections.ConfigDict(dict(
      epochs=100, batch_size=1024, seed=0,
      lr=5e-5, lr_end=1e-6, warmup_steps=0,
      weight_decay=0.01, b1=0.9, b2=0.999, grad_clip=1.0,
      val_samples=5_000,  # Generated rows compared with held-out rows each epoch.
      probe_rows=2_000,  # Held-out rows whose best scores select the model.
      select='probe',  # 'probe': probe-gap criterion (rfp.evaluation.hardness); 'fd'.
      time_dist='uniform',  # Training time steps: 'uniform' (paper) or 'logit_normal'.
      ema_decay=0.0,  # > 0: sample an exponential moving average of the weights.
      log_every=50, checkpoint_every=2_000,
      # Distillation (rfp/distill.py): a run folder here makes train.py distil
      # its best checkpoint into a sampler of `distill_steps` Euler steps.
      distill_from=config_dict.placeholder(str),
      distill_pairs=262_144,  # (noise, teacher row) pairs; one epoch is one pass over them.
      distill_steps=1,  # The student's network evaluations per row.
      distill_reflow_epochs=0,  # Epochs with uniform times (reflow) before the student's own.
  ))

  # Sampling (sample.py, and evaluate.py when it samples its own rows).
  c.sample = ml_collections.ConfigDict(dict(
      n=config_dict.placeholder(int),  # Rows in all; sample.py --n.
      shards=1,  # .npy files; rows are split evenly (sample.py --shards).
      seed=0,  # With the shard index it fixes every row.
      steps=32, solver='euler',  # 'euler', 'heun' or 'midpoint' (two evaluations per step).
      batch_size=4096,  # Rows per sampler call; only speed and memory depend on it.
      dtype='float16',  # On disk: 'float16' or 'float32'.
      # Project rows onto the unit sphere after de-normalising; None: when the
      # training rows are unit-norm (every system's are).
      sphere=config_dict.placeholder(bool),
      checkpoint='best',  # 'best' (selected by train.select) or 'latest'.
      # Noise scale; None: the run's calibrated one (rfp.calibration), else 1.
      temperature=config_dict.placeholder(float),
      matmul_dtype=config_dict.placeholder(str),  # Override model.dtype while sampling.
      # Whole tracks (rfp.tracks: correlated noise fitted to the training
      # tracks) instead of i.i.d. rows, with per-shard track bounds.
      tracks=False,
      # Windows per track; None: lengths of the training tracks, drawn at random.
      track_length=config_dict.placeholder(int),
  ))

  c.eval = ml_collections.ConfigDict(dict(
      reference='data/reference.npy',
      reference_tracks='data/reference_tracks.npy',
      queries='data/queries.npy',
      ground_truth='data/ground_truth.npy',
      real_distractors='data/distractors.npy',
      # Track id of each pool row: distractor sets are then whole tracks; None: the
      # file is read as one track (sets are runs of rows at random offsets).
      real_distractor_tracks='data/distractors_tracks.npy',
      # Multi-segment queries [queries, segments, dim] and the reference row of
      # each one's first segment; None: single-window queries only.
      sequence_queries='data/sequence_queries.npy',
      sequence_ground_truth='data/sequence_ground_truth.npy',
      # Query lengths in segments, searched as runs of consecutive rows (1, 2, 3,
      # 5 and 10 s at the systems' 0.5 s hop), where the queries have them.
      query_lengths=[1, 3, 5, 9, 19],
      window_seconds=1.0, hop_seconds=0.5,  # The system's windows, for the report's seconds.
      num_sequence_queries=1_000,
      # Sizes where queries of every length are run; empty: the real curve's.
      sequence_sizes=[],
      # Also sample synthetic tracks (rfp.tracks) for those sizes, a curve beside
      # the i.i.d. rows; in WORKDIR/samples-tracks.
      tracks=True,
      synthetic=config_dict.placeholder(str),  # Folder of sample.py shards; else sampled as needed.
      sizes=[1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
      real_sizes=[],  # Real distractor counts; empty: eval.sizes up to the pool size.
      fidelity_rows=5_000,  # Rows per set for FD/JS/PRDC (JS and PRDC cost grows as rows^2).
      repeats=3,
      num_queries=2_000,
      seed=0,
      index=ml_collections.ConfigDict(dict(
          nlist=256, nprobe=40, code_bytes=64, bits=8, k=20, train_rows=100_000,
          # False: train each point's index on its own database (the paper's
          # protocol). True: train once on references + real rows and reuse
          # the quantizers everywhere (far cheaper; one codebook for all curves).
          shared_training=False)),
  ))
  return c


def nafp_layout(c, folder):
  """Points `c` at a NAFP-style folder (NAFP, GraFPrint, PeakNetFP): db.mm,
  query.mm, dummy_db.mm with their *_shape.npy, no track ids. The flow trains on
  dummy_db.mm as the systems' own code does (`build_data.py --layout nafp` also
  writes a disjoint train.mm: --config.data.train=FOLDER/train.mm)."""
  c.data.train, c.data.train_tracks = f'{folder}/dummy_db.mm', None
  c.eval.reference = folder  # A folder: read in the NAFP layout (rfp.evaluation.inputs).
  c.eval.reference_tracks = c.eval.real_distractor_tracks = None
  c.eval.sequence_queries = c.eval.sequence_ground_truth = None
  return c


def nmfp_layout(c, folder):
  """Points `c` at NMFP-style files as `build_data.py --layout nmfp` writes them:
  reference/, distractors/ and train/ databases (database.mm + database.csv),
  queries/ (one [segments, dim] .npy each, queries.csv) and ground_truth.csv."""
  c.data.train = f'{folder}/train/database.mm'
  c.data.train_tracks = f'{folder}/train/database.csv'
  c.eval.reference = f'{folder}/reference/database.mm'
  c.eval.reference_tracks = f'{folder}/reference/database.csv'
  c.eval.queries = c.eval.ground_truth = None  # First segments of the sequence queries.
  c.eval.sequence_queries = f'{folder}/queries'
  c.eval.sequence_ground_truth = f'{folder}/ground_truth.csv'
  c.eval.real_distractors = f'{folder}/distractors/database.mm'
  c.eval.real_distractor_tracks = f'{folder}/distractors/database.csv'
  return c


# The fields a layout sets (`nafp_layout`, `nmfp_layout`).
LAYOUT_KEYS = (('data', ('train', 'train_tracks')),
               ('eval', ('reference', 'reference_tracks', 'queries', 'ground_truth',
                         'sequence_queries', 'sequence_ground_truth', 'real_distractors',
                         'real_distractor_tracks')))


def layout_paths(layout, folder):
  """{'SECTION.KEY': value} pointing a config at `folder` in `layout` ('nafp' or
  'nmfp'), as `--config.SECTION.KEY=VALUE` flags set them on a system's config.
  For a NAFP folder the flow trains on the disjoint train.mm that
  `build_data.py --layout nafp` writes beside dummy_db.mm."""
  c = {'nafp': nafp_layout, 'nmfp': nmfp_layout}[layout](get_config(), folder)
  if layout == 'nafp':
    c.data.train = f'{folder}/train.mm'
  return {f'{section}.{key}': c[section][key] for section, keys in LAYOUT_KEYS for key in keys}
