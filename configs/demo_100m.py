"""The paper's Table 3 point (`make scale`): HR@1 at 1M and 100M synthetic distractors, on one
ordinary machine (a 2-core CPU; bench/RESULTS.md, 100M on one machine).

  python train.py --config configs/demo.py
  python train.py --config configs/demo_distill.py --workdir runs/demo-1block \
      --config.train.distill_model.depth=1
  python evaluate.py --workdir runs/demo-1block --config configs/demo_100m.py

The one-step sampler of the teacher's first block (within 0.15 points of the
teacher's hardness on this data) draws the 100M rows (25.6 GB of float16
shards in runs/demo-1block/samples; the free space is checked first), then one
sweep indexes 10k to 100M of them beside the real curves; the 100M point is
built in parts kept on disk (`eval.index.part_rows`), so an interrupted run
redoes at most one. One repeat per size (100M rows are drawn once) and 1,000
queries: the IVF-PQ scan and the exact hardness pass both cost queries x rows,
and 1,000 queries give HR@1 to about +-1.4 points.
"""

from configs import demo_distill


def get_config():
  c = demo_distill.get_config()
  c.name = 'demo-100m'
  c.eval.sizes = [10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]
  c.eval.repeats = 1
  c.eval.num_queries = 1_000
  return c
