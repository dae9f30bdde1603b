"""Stage 3, fingerprinter: the shipped weights, or a (resumable) training run that
ends with the distortion whitening of its last layer and writes new weights."""

import dataclasses
import hashlib
import json
import pathlib

import jax
import numpy as np
from tqdm import tqdm

from rfp.audio import augment, fingerprinter
from rfp.audio.embed import window_fingerprints
from rfp.audio.features import SAMPLE_RATE
from rfp.audio.queries import make_queries
from rfp.audio.splits import split_summary
from rfp.audio.workdir import concat_audio, write_json

WEIGHTS = pathlib.Path(__file__).parent / 'weights' / 'fingerprinter.npz'


@dataclasses.dataclass(frozen=True)
class Weights:
  """The fingerprinter a build embeds with: its weights file, their values, and
  their record (the .json beside the file: how and on what music they were trained)."""
  path: pathlib.Path
  params: dict
  info: dict


def starting_point(init, widen, key):
  """(params or None, Encoder) a training run starts from: the `init` weights file's,
  made twice as wide by `fingerprinter.widen` if `widen`; or, with no `init`, random
  weights of the default encoder or, if `widen`, of one with every conv twice as wide."""
  if not init:
    return None, fingerprinter.Encoder(
        channels=fingerprinter.WIDE_CHANNELS if widen else fingerprinter.CHANNELS)
  start = fingerprinter.load_weights(init)
  if widen:
    start = fingerprinter.widen(start, key)
  return start, fingerprinter.encoder_for(start)


def _settings(build):
  """What makes one training run another: its checkpoints live in a folder named for it."""
  return {'seed': build.seed, 'steps': build.fp_steps, 'batch': build.fp_batch,
          'per_track': build.fp_per_track, 'lr': build.fp_lr,
          **({'mine_every': build.fp_mine_every} if build.fp_mine_every else {}),
          **({'widen': True} if build.fp_widen else {}),
          **({'loss': build.fp_loss} if build.fp_loss != 'nt-xent' else {}),
          'init_sha1': (hashlib.sha1(pathlib.Path(build.fp_init).read_bytes()).hexdigest()
                        if build.fp_init else None)}


def train_fingerprinter(work, splits, build, licenses=None, log=print):
  """The fingerprinter stage of the `build` config section: returns `Weights`.

  The shipped weights are used unless `build.retrain_fingerprinter`, so a rebuild
  embeds with the fingerprinter that produced the shipped data. A retrain writes
  to `build.weights_dir` (WORK/weights/ when unset), or over the shipped weights
  if `build.replace_shipped_weights`. The record beside the weights lists the
  tracks they were trained on and those tracks' `licenses` (package -> licences),
  so a rebuild that reuses them need not fetch that music to describe it.
  `build.fp_init` (a weights file) makes the run a fine-tune of those weights;
  `fp_widen` makes every conv twice as wide (`starting_point`); `fp_loss` names
  one of `fingerprinter.LOSSES`. Training ends with `fit_whitening` on
  `build.whiten_excerpts` distorted excerpts.
  """
  if not build.retrain_fingerprinter and WEIGHTS.exists() and WEIGHTS.with_suffix('.json').exists():
    log(f'fingerprinter: using {WEIGHTS}')
    return Weights(WEIGHTS, fingerprinter.load_weights(WEIGHTS),
                   json.loads(WEIGHTS.with_suffix('.json').read_text()))
  path = (WEIGHTS if build.replace_shipped_weights
          else pathlib.Path(build.weights_dir or work / 'weights') / WEIGHTS.name)
  settings = _settings(build)
  ckpt_dir = work / 'fingerprinter' / hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  ckpt_dir.mkdir(parents=True, exist_ok=True)
  write_json(ckpt_dir / 'settings.json', settings)
  seed, init = build.seed, build.fp_init
  audio, bounds = concat_audio(work, splits['splits']['fingerprinter'])
  noise, _ = concat_audio(work, splits['splits']['noise_train'])
  rirs = augment.room_impulse_responses(jax.random.key(seed + 1), 2000)  # Query RIRs use another seed.
  log(f'fingerprinter: {audio.size / SAMPLE_RATE / 60:.0f} min of music, '
      f'{noise.size / SAMPLE_RATE / 60:.0f} min of noise; checkpoints in {ckpt_dir}')
  start, model = starting_point(init, build.fp_widen, jax.random.key(seed + 5))
  params, info = fingerprinter.train(
      jax.random.key(seed), audio, bounds, noise, rirs, ckpt_dir, build.fp_steps, build.fp_batch,
      build.fp_per_track, lr=build.fp_lr, init=start, model=model, mine_every=build.fp_mine_every,
      loss=build.fp_loss, log=log)
  params = fit_whitening(jax.random.key(seed + 4), params, audio, bounds, noise, rirs,
                         build.whiten_excerpts, log=log)
  path.parent.mkdir(parents=True, exist_ok=True)
  fingerprinter.save_weights(path, params)
  if build.fp_steps:
    info.update(batch=build.fp_batch, per_track=build.fp_per_track, lr=build.fp_lr, loss=build.fp_loss,
                **({'mine_every': build.fp_mine_every} if build.fp_mine_every else {}),
                **({'widened': 'every conv twice as wide as the weights fine-tuned from' if init
                               else 'every conv twice as wide as the default encoder'}
                   if build.fp_widen else {}))
  fp_entries = splits['splits']['fingerprinter']
  info.update(params=fingerprinter.count_params(params), rir_seed=seed + 1,
              whitening={'excerpts': build.whiten_excerpts, 'reg': fingerprinter.WHITEN_REG,
                         'fit_on': 'fingerprinter training tracks, training noise and rooms'},
              trained_on={**split_summary(fp_entries),
                          'licenses': {p: (licenses or {}).get(p, [])
                                       for p in sorted({e['package'] for e in fp_entries})}})
  init_info = pathlib.Path(init).with_suffix('.json') if init else None
  if init_info is not None and init_info.exists():
    before = json.loads(init_info.read_text())
    if before.get('trained_on') == info['trained_on']:
      del before['trained_on']  # Said once, at the top.
    info['fine_tuned_from'] = before
  write_json(path.with_suffix('.json'), info)
  return Weights(path, fingerprinter.load_weights(path), info)


def fit_whitening(key, params, audio, bounds, noise, rirs_nl, n_excerpts, chunk=5000, log=print):
  """`fingerprinter.whiten_last_layer` fit on tracks (`workdir.concat_audio`'s
  `audio`, `bounds`), noise and rooms: database rows as the export makes them,
  and `n_excerpts` distorted excerpts as queries are made.

  Give it training audio, noise and rooms only: the queries' must stay unseen.
  """
  log(f'fingerprinter: fitting the whitening on {n_excerpts} distorted excerpts')
  rows_nsd = window_fingerprints(params, (audio[a:b] for a, b in bounds), normalise=False)
  queries, truths = [], []
  for i in tqdm(range(0, n_excerpts, chunk), desc='whitening', mininterval=5):
    q_qd, truth_q, _ = make_queries(jax.random.fold_in(key, i), params, audio, bounds, noise,
                                    min(chunk, n_excerpts - i), rirs_nl, normalise=False)
    queries.append(q_qd)
    truths.append(truth_q)
  return fingerprinter.whiten_last_layer(params, rows_nsd, np.concatenate(queries),
                                         np.concatenate(truths))
