"""Track bounds: which rows of a row source form one track.

Rows are kept in track order, so a source's tracks are given by its bounds:
an int64 array `[tracks + 1]` of each track's first row, then the row count.
Training files (`data.train_tracks`), the evaluation's references, sample
folders of synthetic tracks (`rfp.sample_folder.read_bounds`) and the
multi-segment search (`rfp.evaluation.sequences`) all speak it. Numpy only,
so the data build, training and evaluation import it alike.
"""

import numpy as np

from rfp.errors import InputError


def track_bounds(starts_t, n):
  """Track bounds `[tracks + 1]` from each track's first row (sorted) and the row count."""
  bounds = np.append(np.asarray(starts_t, np.int64), n)
  if bounds[0] != 0 or np.any(np.diff(bounds) <= 0):
    raise InputError(f'track starts {np.asarray(starts_t)[:10]} (of {n:,} rows): expected '
                     'increasing first rows of non-empty tracks, beginning at row 0')
  return bounds


def bounds_from_ids(track_id_n):
  """Track bounds of rows in track order: a track is a run of equal ids."""
  track_id_n = np.asarray(track_id_n)
  changes = np.flatnonzero(track_id_n[1:] != track_id_n[:-1]) + 1
  return track_bounds(np.concatenate([[0], changes]), len(track_id_n))


def stack_bounds(parts):
  """Bounds of row sources one after another (`rfp.rows.Stack`), from each one's bounds."""
  firsts, offset = [], 0
  for bounds in parts:
    firsts.append(bounds[:-1] + offset)
    offset += int(bounds[-1])
  return track_bounds(np.concatenate(firsts), offset)


def slice_bounds(bounds, a, b):
  """Bounds of rows [a, b) of a row source with `bounds`: tracks cut at the slice's ends."""
  inner = bounds[(bounds > a) & (bounds < b)]
  return np.concatenate([[0], inner - a, [b - a]]).astype(np.int64)


def check_covers(bounds, rows, name):
  """InputError unless `bounds` cover exactly the rows of the row source `rows`."""
  if bounds[-1] != rows.n:
    raise InputError(f'{name}: track bounds cover {int(bounds[-1]):,} rows, the rows number '
                     f'{rows.n:,}')


def valid_starts(starts, bounds, length):
  """Whether rows start..start + length - 1 exist and lie in one track."""
  starts = np.asarray(starts, np.int64)
  after = np.searchsorted(bounds, starts, side='right')  # 1 + each start's track.
  end = bounds[np.minimum(after, len(bounds) - 1)]
  return (starts >= 0) & (after < len(bounds)) & (starts + length <= end)
