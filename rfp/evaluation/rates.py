"""Hit rates: how many queries find their reference row, or its track.

The sweep (`rfp.evaluation.scaling`) reads them off the index's re-ranked
results and the data build (`rfp.audio.scoring`) off exact search; numpy
only, so the build reports them without loading faiss.
"""

import numpy as np


def hit_rates(ids_qk, gt_q, n_refs, track_id_of_row=None):
  """Shares of queries whose re-ranked results `ids_qk` find their reference row.

  hr1: right row at rank 1; topk: right row among the candidates; with the
  track id of each reference row, track1: a row of the right track at rank
  1, near1: a row within one segment of the right one, same track.
  """
  top1 = ids_qk[:, 0]
  out = {'hr1': float(np.mean(top1 == gt_q)),
         'topk': float(np.mean((ids_qk == gt_q[:, None]).any(1)))}
  if track_id_of_row is not None:
    is_ref = (top1 >= 0) & (top1 < n_refs)
    same_track = is_ref & (track_id_of_row[np.where(is_ref, top1, 0)] == track_id_of_row[gt_q])
    out['track1'] = float(np.mean(same_track))
    out['near1'] = float(np.mean(same_track & (np.abs(top1 - gt_q) <= 1)))
  return out


def sequence_hit_rates(best_start_q, gt_start_q, track_id_of_row, n_refs):
  """`hit_rates` of each multi-segment query's best start: hr1 (the true start),
  near1 (within one segment of it, same track) and track1 (a start in the right
  track); `track_id_of_row` gives the track of each reference row (None: hr1 only)."""
  rates = hit_rates(np.asarray(best_start_q)[:, None], gt_start_q, n_refs, track_id_of_row)
  return {key: rates[key] for key in ('hr1', 'near1', 'track1') if key in rates}
