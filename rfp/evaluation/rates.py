"""Hit rates: how many queries find their reference row, or its track.

The sweep (`rfp.evaluation.scaling`) reads them off the index's re-ranked
results and the data build (`rfp.audio.scoring`) off exact search; numpy
only, so the build reports them without loading faiss.
"""

import numpy as np


SEQUENCE_TOPS = (3, 10)  # NAFP's top-3 and top-10 exact, beside top-1.


def _found(ids_qk, gt_q):
  """Share of queries whose right row is among their ids."""
  return float(np.mean((ids_qk == gt_q[:, None]).any(1)))


def hit_rates(ids_qk, gt_q, n_refs, track_id_of_row=None):
  """Shares of queries whose re-ranked results `ids_qk` find their reference row.

  hr1: right row at rank 1; topk: right row among the candidates; near1: a
  row within one segment of the right one, same track (without track ids
  the references are one track, as NAFP counts it); with the track id of
  each reference row, track1: a row of the right track at rank 1.
  """
  top1 = ids_qk[:, 0]
  is_ref = (top1 >= 0) & (top1 < n_refs)
  same_track = is_ref
  out = {'hr1': float(np.mean(top1 == gt_q)), 'topk': _found(ids_qk, gt_q)}
  if track_id_of_row is not None:
    same_track = is_ref & (track_id_of_row[np.where(is_ref, top1, 0)] == track_id_of_row[gt_q])
    out['track1'] = float(np.mean(same_track))
  out['near1'] = float(np.mean(same_track & (np.abs(top1 - gt_q) <= 1)))
  return out


def sequence_hit_rates(starts_qt, gt_start_q, track_id_of_row, n_refs):
  """`hit_rates` of each multi-segment query's best starts `starts_qt` (best
  first): hr1 (the true start first), near1 (within one segment of it, same
  track), track1 (with track ids: a start in the right track) and, where
  that many starts were kept, top3 and top10 (the true start among them)."""
  starts_qt = np.asarray(starts_qt)
  rates = hit_rates(starts_qt[:, :1], gt_start_q, n_refs, track_id_of_row)
  out = {key: rates[key] for key in ('hr1', 'near1', 'track1') if key in rates}
  out.update({f'top{t}': _found(starts_qt[:, :t], gt_start_q)
              for t in SEQUENCE_TOPS if t <= starts_qt.shape[1]})
  return out
