"""The paper's model (Table 1) and training (Sec. 2.5). Other configs override it.

`size` picks the model and its training: 'paper' (Table 1, 100 epochs: a GPU
run) or 'small' (the demo's: minutes on a 2-core CPU), as
`--config.size=small` on any config whose get_config takes it.

Evaluation settings follow the NAFP protocol (reference notes, Sec. 2) where it
costs minutes on a CPU, and point at the project's shipped data; system
configs replace them with their own. Its costly parts are options: an index
trained per point (`eval.index.shared_training=False`, the paper's protocol)
and more queries (`eval.num_sequence_queries`, `eval.num_queries`).
"""

import pathlib

import ml_collections
from ml_collections import config_dict


SIZES = ('paper', 'small')


def get_config(size='paper'):
  c = ml_collections.ConfigDict()
  c.name = 'base'

  # The fingerprinting system whose embeddings are modelled (named in reports).
  c.system = ml_collections.ConfigDict(dict(name='rfp-reference'))

  c.data = ml_collections.ConfigDict(dict(
      train='data/flow_train.npy',  # [rows, dim] .npy or NAFP-style NAME.mm + NAME_shape.npy.
      # Track id of each training row (rows of a track consecutive): a file
      # that must belong to data.train; 'auto': data.train's own track file
      # (rfp.data.own_tracks: NAME_tracks.npy, or NMFP's database.csv, beside
      # it) if it has one; None, or 'auto' without one: blocks of
      # val_block_rows rows stand in for tracks.
      train_tracks='auto',
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
      # The student's network where it differs from the teacher's (None: the
      # teacher's): a shallower one starts from the teacher's first blocks, any
      # other shape from scratch (rfp.distill.student_params).
      distill_model=ml_collections.ConfigDict(dict(
          width=config_dict.placeholder(int), depth=config_dict.placeholder(int),
          hidden=config_dict.placeholder(int))),
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
      # Track ids of the references, as data.train_tracks ('auto': the file's
      # own; None: the file is read as one track).
      reference_tracks='auto',
      queries='data/queries.npy',
      ground_truth='data/ground_truth.npy',
      real_distractors='data/distractors.npy',
      # Track id of each pool row, as data.train_tracks: distractor sets are then
      # whole tracks; None: the file is read as one track (sets are runs of rows
      # at random offsets).
      real_distractor_tracks='auto',
      # Multi-segment queries [queries, segments, dim] and the reference row of
      # each one's first segment; None: single-window queries only.
      sequence_queries='data/sequence_queries.npy',
      sequence_ground_truth='data/sequence_ground_truth.npy',
      # Query lengths in segments, searched as runs of consecutive rows (1, 2, 3,
      # 5, 6 and 10 s at the systems' 0.5 s hop; NAFP's eval_faiss.py lengths),
      # where the queries have them.
      query_lengths=[1, 3, 5, 9, 11, 19],
      window_seconds=1.0, hop_seconds=0.5,  # The system's windows, for the report's seconds.
      # A query starts every this many segments of each query recording (NMFP's
      # delta_n); queries are drawn from those starts.
      sequence_query_step=7,
      # 500 keep the multi-segment curves to minutes on a CPU; NAFP and NMFP use
      # 1,000 or more (HR@1 to about +-1.4 points).
      num_sequence_queries=500,
      # Sizes where queries of every length are run; empty: the real curve's.
      sequence_sizes=[],
      # Also sample synthetic tracks (rfp.tracks) for those sizes, a curve beside
      # the i.i.d. rows; in WORKDIR/samples-tracks.
      tracks=True,
      synthetic=config_dict.placeholder(str),  # Folder of sample.py shards; else sampled as needed.
      sizes=[1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
      real_sizes=[],  # Real distractor counts; empty: eval.sizes up to the pool size.
      fidelity_rows=5_000,  # Rows per set for FD/JS/PRDC (JS and PRDC cost grows as rows^2).
      repeats=2,
      num_queries=2_000,
      seed=0,
      index=ml_collections.ConfigDict(dict(
          nlist=256, nprobe=40, code_bytes=64, bits=8, k=20,
          train_rows=50_000,  # PQ training takes tens of seconds per index on a 2-core CPU.
          # True: train once on references + real rows and reuse the quantizers
          # everywhere (one codebook for all curves; minutes on a CPU). False:
          # train each point's index on its own database (the paper's protocol).
          shared_training=True,
          # A database of every synthetic row and more than this many rows is
          # built in parts of about this size, each kept on disk when finished
          # (with its exact hardness pass), so an interrupted run carries on
          # from its last part; then merged on disk (rfp.index_parts).
          part_rows=25_000_000)),
  ))
  return sized(c, size)


def sized(c, size):
  """`c` with the model and training of `size` (`SIZES`): 'paper' leaves
  Table 1; 'small' is the demo's model (256 wide, 3 blocks) and schedule (20
  epochs), with 8 midpoint sampling steps."""
  if size not in SIZES:
    raise ValueError(f'size={size!r}: expected one of {", ".join(SIZES)}')
  if size == 'small':
    c.data.val_fraction = 0.1
    c.model.width, c.model.depth, c.model.hidden = 256, 3, 768
    c.train.epochs, c.train.batch_size = 20, 512
    c.train.lr, c.train.lr_end, c.train.warmup_steps = 1e-3, 1e-5, 200
    c.train.val_samples = 10_000
    c.sample.solver, c.sample.steps = 'midpoint', 8
  return c


def nafp_layout(c, folder):
  """Points `c` at a NAFP-style folder (NAFP, GraFPrint, PeakNetFP): db.mm,
  query.mm, dummy_db.mm with their *_shape.npy, no track ids. The flow trains on
  the folder's train.mm where there is one (`build_data.py --layout nafp`
  writes it, disjoint from the rest), else on dummy_db.mm as the systems' own
  code does."""
  train = pathlib.Path(folder) / 'train.mm'
  c.data.train = str(train) if train.is_file() else f'{folder}/dummy_db.mm'
  c.data.train_tracks = None
  c.eval.reference = folder  # A folder: read in the NAFP layout (rfp.evaluation.inputs).
  c.eval.reference_tracks = c.eval.real_distractor_tracks = None
  c.eval.sequence_queries = c.eval.sequence_ground_truth = None
  return c


def nmfp_layout(c, folder):
  """Points `c` at NMFP's files (rfp/layouts.py; docs/evaluation.md):
  reference/, distractors/ and train/ databases (database.mm + database.csv),
  queries/ (one [segments, dim] .npy per recording, queries.csv) and
  ground_truth.csv."""
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


def layout_paths(layout, folder, sections=('data', 'eval')):
  """{'SECTION.KEY': value} pointing a config at `folder` in `layout` ('nafp' or
  'nmfp'), as `--config.SECTION.KEY=VALUE` flags set them on a system's config
  (`--nafp DIR`, `--nmfp DIR` of train.py and evaluate.py), for the fields of
  `sections`."""
  c = {'nafp': nafp_layout, 'nmfp': nmfp_layout}[layout](get_config(), folder)
  return {f'{section}.{key}': c[section][key] for section, keys in LAYOUT_KEYS
          if section in sections for key in keys}
