"""Stage 2, split: music de-duplicated, then whole tracks assigned to disjoint splits
(fingerprinter training, reference R, flow training G, distractors D) and noise
to training and query halves, in WORK/splits.json."""

import dataclasses
import hashlib
import json

import jax
import numpy as np

from rfp.audio import corpus, features
from rfp.audio.embed import n_windows, windows
from rfp.audio.features import SAMPLE_RATE
from rfp.audio.workdir import track_audio, write_json


@dataclasses.dataclass(frozen=True)
class SplitPlan:
  """How the music is split: the fingerprinter's share in seconds, the others in
  database rows; reference tracks may have at most `max_reference_repetition` of
  their windows recurring (`track_repetition`)."""
  seed: int
  fingerprinter_seconds: float
  reference_rows: int
  flow_rows: int
  distractor_rows: int
  max_reference_repetition: float = 0.1


_log_mel = jax.jit(features.log_mel)


def track_repetition(work, entry):
  """How looped a track is: see `corpus.self_repetition`."""
  w_ns = windows(track_audio(work, entry))
  mel_nmf = np.concatenate([np.asarray(_log_mel(np.asarray(w_ns[i:i + 512])))
                            for i in range(0, w_ns.shape[0], 512)])
  return corpus.self_repetition(mel_nmf)


def split(work, cat, plan, log=print):
  """De-duplicates music, then assigns whole tracks to disjoint splits in a seeded order.

  Reference tracks must be loop-free (see `SplitPlan`); a looped track passed
  over goes to the next split instead. Music left over once the other splits
  are full, then fingerprinter-only music that is not a copy of a kept track,
  join the fingerprinter split on top of its `plan.fingerprinter_seconds`; the
  other splits do not depend on either.
  """
  out = work / 'splits.json'
  # A catalog of other music or another plan makes other splits.
  inputs = hashlib.sha1(json.dumps([sorted((e['file'], e['kind'], e['fingerprinter_only'])
                                           for e in cat['entries']),
                                    plan.seed, plan.fingerprinter_seconds, plan.reference_rows,
                                    plan.flow_rows, plan.distractor_rows,
                                    plan.max_reference_repetition]).encode()).hexdigest()
  if out.exists():
    cached = json.loads(out.read_text())
    if cached.get('inputs') == inputs:
      return cached
  music = [e for e in cat['entries'] if e['kind'] == 'music' and not e['fingerprinter_only']]
  extra = [e for e in cat['entries'] if e['kind'] == 'music' and e['fingerprinter_only']]
  everything = music + extra
  signatures = []
  for e in everything:
    x = track_audio(work, e)
    signatures.append((corpus.envelope_signature(x), corpus.spectral_signature(x)))
  # `deduplicate` keeps the first of each group in input order and the other
  # packages' music comes first, so extra music only ever loses to it, never displaces a track.
  distinct = corpus.deduplicate(signatures, [e['seconds'] for e in everything])
  keep = [i for i in distinct if i < len(music)]
  kept_extra = [i for i in distinct if i >= len(music)]
  dropped = [everything[i]['package'] + ':' + everything[i]['source']
             for i in set(range(len(everything))) - set(distinct)]
  log(f'split: {len(music)} music tracks, {len(keep)} distinct after de-duplication; '
      f'{len(kept_extra)} of {len(extra)} fingerprinter-only tracks distinct from those')
  rng = np.random.default_rng(plan.seed)
  order = [music[i] for i in rng.permutation(keep)]
  rows = {e['file']: n_windows(int(e['seconds'] * SAMPLE_RATE)) for e in everything}
  targets = [('fingerprinter', plan.fingerprinter_seconds * 2), ('reference', plan.reference_rows),
             ('flow_train', plan.flow_rows), ('distractors', plan.distractor_rows)]
  splits = {name: [] for name, _ in targets}
  filled = dict.fromkeys(splits, 0)
  leftover = []
  for e in order:
    # Fill each split in turn; rows from the fingerprinter split are seconds * 2.
    open_splits = [n for n, t in targets if filled[n] < t]
    if (open_splits and open_splits[0] == 'reference'
        and track_repetition(work, e) > plan.max_reference_repetition):
      open_splits = open_splits[1:]  # Looped tracks would make a query's true row ambiguous.
    if not open_splits:
      leftover.append(e)
      continue
    splits[open_splits[0]].append(e)
    filled[open_splits[0]] += rows[e['file']]
  more = leftover + [everything[i] for i in kept_extra]
  splits['fingerprinter'] += more
  filled['fingerprinter'] += sum(rows[e['file']] for e in more)
  noise = [e for e in cat['entries'] if e['kind'] == 'noise']
  noise = [noise[i] for i in rng.permutation(len(noise))]
  splits['noise_train'], splits['noise_query'] = noise[::2], noise[1::2]
  result = {'splits': splits, 'rows': filled,
            'max_reference_repetition': plan.max_reference_repetition,
            'distinct_tracks': len(distinct), 'duplicates_dropped': sorted(dropped), 'inputs': inputs}
  for name, items in splits.items():
    log(f'split: {name}: {len(items)} files, {sum(e["seconds"] for e in items) / 60:.0f} min')
  write_json(out, result)
  return result


def split_summary(entries):
  """A split as metadata.json lists it: tracks, minutes and each track's 'package:source'."""
  return {'tracks': len(entries), 'minutes': round(sum(e['seconds'] for e in entries) / 60, 1),
          'files': [f"{e['package']}:{e['source']}" for e in entries]}
