"""Synthetic tracks: the trained row model driven by temporally correlated noise.

A track's windows come from the same velocity network and solver as i.i.d.
rows; only their noise differs. A track is a sequence of sections, each new
or a repeat. Window t of a new section starts from

    b_t = s_0 eps_t + sum_k s_k u_k,t + s_m m_t,   s_k = sqrt(w_k),  s_0 = sqrt(1 - sum w)

where eps is the row sampler's own noise (`rfp.noise.make_noise`), u_k
are independent stationary AR(1) processes of fixed rates a_k (`RATES`; rate
1 holds one value for the whole track), restarted at each track's first
window, and m is the MA(1) process (e_t + e_{t-1}) / sqrt(2) (neighbouring
windows share half their audio). Window t of a repeated section replays the
noise of an earlier window of the track, s(t), about one loop back:

    z_t = rho z_s(t) + sqrt(1 - rho^2) y_t

where y is the same weighted process restarted at the section's first
window and at each period of a loop (it shares the rows' innovations; only
its state restarts), and s(t) lies before the period: so y_t is independent
of z_s(t), and every window's noise is exactly N(0, I). Each window is then
distributed as a row of the row sampler (same single-window hardness), while
neighbours correlate as the weights say and repeated sections come back
close to what they replay (as close as rho).

The weights are fitted through the model (`fit`): the mean output cosine of
two windows whose noises correlate by rho is measured on a grid of rho (it
grows with rho), the real training tracks' lag-similarity curve is read off
it as a noise correlation per lag, and `rfp.temporal.fit_weights` matches
that. Real tracks differ (ambient drones barely move, drum loops do), so the
training tracks are split into `PROFILES` groups by how fast they move and
each group gets weights of its own. The sections are fitted per training
track to its repetition (`rfp.temporal.repeat_statistics`): the share of its
windows with a strong match 4+ s away sets its repeat probability, the
distance of those matches the section lengths and how far back a repeat
reaches, their cosine (through the same response) the repeats' rho, and how
often that distance drifts by a row the offset jitter. A synthetic track
takes the profile, the length and the repetition of a training track drawn
at random.

    WORKDIR/temporal.json   the fit: {'sampler', 'generator', 'rates', 'lags',
                            'profiles': [{'weights', 'target', 'predicted'}],
                            'track_profile', 'track_lengths', 'repeats':
                            [{'p', 'lags', 'rhos'}] per track, 'jitter', 'strong',
                            'response', 'real', 'source'}

It is written when training ends (beside calibration.json) and again by
`ensure_fit` whenever sampling asks for tracks with other sampler settings
or the file is from an older generator.
"""

import functools
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rfp import data, files, noise as noise_lib, rows as rows_lib, sharding, temporal
from rfp.bounds import bounds_from_ids

FILE = 'temporal.json'
GENERATOR = temporal.GENERATOR
# AR(1) rates: from about one window's memory (neighbours share half their audio)
# to the whole track (1). Fixed, so a shard's noise depends only on the weights.
RATES = (0.2, 0.5, 0.8, 0.95, 0.98, 0.995, 1.0)
PROFILES = 4
# Noise correlations at which the model's output similarity is measured.
RESPONSE_RHO = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995,
                1.0)
RESPONSE_PAIRS = 1024
FIT_SEED = 0
# Training tracks read by the fit, evenly spread over the file: enough for
# the curves' spread and the lengths, bounded however large the file.
FIT_TRACKS = 2000
# A window repeats when its best match 4+ s away is as close as two windows
# whose noises correlate by this: well above what a track's slow drift gives.
STRONG_RHO = 0.8
# Repeat probabilities tried, and layouts drawn for each, when one is matched
# to a track's share of repeating windows.
REPEAT_GRID = tuple(np.linspace(0.0, 1.0, 11))
REPEAT_DRAWS = 4
# Noise dimensions and batch of the simulation that measures what repeats add to the lag curve.
SIM_DIM = 64
SIM_BATCH = 1024
SIM_ROWS = 1 << 16


class Sections(NamedTuple):
  """Per-track and per-row layout of one shard's tracks (arrays over its rows)."""
  mirror_t: np.ndarray   # int64 [tracks]: the fit's training track each one copies
  profile_t: np.ndarray  # int64 [tracks]: each track's noise weights
  start_n: np.ndarray    # bool [rows]: a section or a loop's period begins (y restarts)
  rho_n: np.ndarray      # float32 [rows]: the replay's weight; 0 in new sections
  source_n: np.ndarray   # int64 [rows]: the shard row replayed (the row itself if none)


def training_tracks(run_config):
  """(bounds, description) of the training file's tracks.

  `data.train_tracks` names the track of each row of `data.train` (rows in
  track order; an integer .npy or NMFP's database.csv); unset, blocks of
  `data.val_block_rows` rows stand in for tracks (as validation assumes),
  which fixes every length to that block.
  """
  emb = data.open_embeddings(run_config.data.train)
  path = run_config.data.get('train_tracks')
  if path:
    ids = data.track_ids(path, emb, 'set data.train_tracks=None to use blocks of rows as tracks')
    return bounds_from_ids(ids), str(path)
  block = int(run_config.data.val_block_rows)
  return np.append(np.arange(0, emb.n, block), emb.n).astype(np.int64), f'blocks of {block} rows'


def _draw(rng, quantiles):
  """One draw from a distribution given by its quantiles at `temporal.LEVELS`."""
  return float(np.interp(rng.random(), temporal.LEVELS, quantiles))


def track_sections(rng, length, repeat, jitter):
  """(restarts `[length]` bool, rho `[length]`, source `[length]` or -1) of one track.

  Sections are as long as the track's match distances (`repeat['lags']`);
  each after the first is, with probability `repeat['p']`, a loop of the
  rows one drawn distance d back (never before the track), with the track's
  rho and an offset that moves by a row with probability `jitter` at each
  window. The second process restarts at every section and every period d of
  a loop, and a row replays only rows before its period: what it replays
  never shares its innovations. Section lengths and distances are drawn
  independently, so the distances of replayed rows follow `repeat['lags']`.
  """
  restart = np.zeros(length, bool)
  rho = np.zeros(length, np.float32)
  source = np.full(length, -1, np.int64)
  t = 0
  while t < length:
    restart[t] = True
    m = length - t
    if repeat['lags']:
      m = min(m, max(1, round(_draw(rng, repeat['lags']))))
    if t and rng.random() < repeat['p']:
      d = min(t, max(1, round(_draw(rng, repeat['lags']))))
      rows = t + np.arange(m)
      period = t + np.arange(m) // d * d
      restart[period] = True
      offset = np.cumsum(rng.choice((-1, 0, 1), m, p=(jitter / 2, 1 - jitter, jitter / 2)))
      source[rows] = np.clip(rows - d + offset, 0, period - 1)
      rho[rows] = _draw(rng, repeat['rhos'])
    t += m
  return restart, rho, source


def stack_sections(parts, mirror_t, profile_t):
  """`Sections` of tracks laid one after another, from each one's `track_sections`."""
  restart, rho, source = (np.concatenate(x) for x in zip(*parts))
  lengths = [len(p[0]) for p in parts]
  offset = np.repeat(np.cumsum([0] + lengths[:-1]), lengths)
  source = np.where(source >= 0, source + offset, np.arange(len(source)))
  return Sections(np.asarray(mirror_t, np.int64), np.asarray(profile_t, np.int64), restart, rho,
                  source)


def layout(seed, shard, rows, track_lengths, track_profile, length=None, repeats=None, jitter=0.0):
  """(bounds `[tracks + 1]` int64, `Sections`) of one shard of `rows` rows.

  Each track takes the length (unless `length` fixes it), the profile and
  the repetition (`repeats`, per training track; None: none) of a training
  track drawn at random; tracks are added until the shard is full and the
  last one is cut at its end. Fixed by (seed, shard) alone.
  """
  rng = np.random.default_rng([int(seed), int(shard)])
  ends, mirrors, parts = [0], [], []
  while ends[-1] < rows:
    j = int(rng.integers(len(track_lengths)))
    n = min(rows - ends[-1], int(length or track_lengths[j]))
    parts.append(track_sections(rng, n, repeats[j] if repeats else {'lags': []}, jitter))
    ends.append(ends[-1] + n)
    mirrors.append(j)
  return (np.array(ends, np.int64),
          stack_sections(parts, mirrors, np.asarray(track_profile, np.int64)[mirrors]))


def replay_share(length, repeat, jitter, rng):
  """The share of a track's windows that replay or are replayed (its layout's
  strong matches), for one draw of its sections."""
  _, rho, source = track_sections(rng, length, repeat, jitter)
  related = rho > 0
  related[source[related]] = True
  return float(np.mean(related))


def repeat_probability(share, length, lags, jitter, seed):
  """The repeat probability whose layouts replay `share` of a track's windows
  (mean over `REPEAT_DRAWS` layouts, interpolated on `REPEAT_GRID`)."""
  if not lags:
    return 0.0
  rng = np.random.default_rng(seed)
  repeat = {'lags': lags, 'rhos': [1.0] * len(lags)}
  got = [np.mean([replay_share(length, {**repeat, 'p': p}, jitter, rng)
                  for _ in range(REPEAT_DRAWS)]) for p in REPEAT_GRID]
  return float(np.interp(share, np.maximum.accumulate(got), REPEAT_GRID))


def row_inputs(bounds, sections, scales_pk, start, stop):
  """Per-row inputs of rows [start, stop) of a shard, padded with repeats of the
  last row to `stop`: (row index `[b]`, restarts `[b, 2]` (first of a track;
  first of a section or period), rho and the next row's source row `[b]`,
  noise scales `[b, components + 1]`)."""
  rows = np.arange(start, stop)
  clipped = np.minimum(rows, bounds[-1] - 1)
  track = np.searchsorted(bounds, clipped, side='right') - 1
  fresh = rows == clipped
  first = (clipped == bounds[track]) & fresh
  ahead = sections.source_n[np.minimum(rows + 1, bounds[-1] - 1)]
  return (rows.astype(np.int32), np.stack([first, sections.start_n[clipped] & fresh], axis=1),
          sections.rho_n[clipped], ahead.astype(np.int32),
          np.asarray(scales_pk, np.float32)[sections.profile_t[track]])


def scales(weights_pk):
  """Noise scales `[profiles, 1 + components]` (white first) from weights
  `[profiles, components]`."""
  w = np.asarray(weights_pk, np.float64)
  white = np.clip(1.0 - w.sum(axis=1, keepdims=True), 0.0, 1.0)
  return np.sqrt(np.hstack([white, w])).astype(np.float32)


def history_rows(track_lengths, length=None):
  """Rows of noise a shard keeps for replays: a power of two covering the longest track."""
  return 1 << int(max(length or 0, max(track_lengths, default=1)) - 1).bit_length()


@functools.cache
def make_track_noise(dim, batch_size, mesh, rates=RATES, history=1):
  """A jitted `(seed, shard, start, state, inputs) -> (z_bd, state)`.

  Noise of rows [start, start + batch) of a track shard (`row_inputs`),
  carrying the state from the batch before (`initial_state` at the shard's
  start, whose first row starts a track): the two processes' AR states, the
  last MA innovation, the last `history` rows of noise, and the next row's
  replayed row from them.
  Rows are computed one after another in a scan, so every row takes the same
  operations whatever the batch size.
  """
  a_k = np.asarray(rates, np.float32)
  c_k = np.sqrt(1.0 - a_k.astype(np.float64) ** 2).astype(np.float32)
  half = np.float32(np.sqrt(0.5))
  eps = noise_lib.batch_normal(batch_size, (dim,))
  innovations = noise_lib.batch_normal(batch_size, (len(rates) + 1, dim), salt=1)

  @functools.partial(jax.jit, out_shardings=(sharding.batch_sharding(mesh),
                                             sharding.replicated(mesh)))
  def noise(seed, shard, start, state, inputs):
    key = noise_lib.shard_key(seed, shard)

    def step(state, row):
      # Both processes at once, [2, ...]: the track's (restarted per track) and the
      # loops' (restarted per section and period). They share the innovations.
      u_pkd, last_d, past_hd, replayed_d = state
      eps_d, e_cd, (t, restart_p, rho, ahead, scale_c) = row
      u_pkd = jnp.where(restart_p[:, None, None], e_cd[:-1],
                        a_k[:, None] * u_pkd + c_k[:, None] * e_cd[:-1])
      m_pd = jnp.where(restart_p[:, None], e_cd[-1], half * (e_cd[-1] + last_d))
      z_pd = scale_c[0] * eps_d + scale_c[-1] * m_pd
      for k in range(len(rates)):  # A fixed order of additions: reproducible sums.
        z_pd = z_pd + scale_c[k + 1] * u_pkd[:, k]
      b_d, y_d = z_pd
      z_d = jnp.where(rho > 0, rho * replayed_d + jnp.sqrt(1.0 - rho * rho) * y_d, b_d)
      past_hd = jax.lax.dynamic_update_index_in_dim(past_hd, z_d, t % history, 0)
      # Read after the write: XLA then updates the history in place, not a copy per row.
      replayed_d = jax.lax.dynamic_index_in_dim(past_hd, ahead % history, keepdims=False)
      return (u_pkd, e_cd[-1], past_hd, replayed_d), z_d

    state, z_bd = jax.lax.scan(step, state, (eps(key, start), innovations(key, start), inputs))
    return z_bd, state

  return noise


def initial_state(dim, rates=RATES, history=1):
  """The scan's state at a shard's start (its first row restarts everything)."""
  return (jnp.zeros((2, len(rates), dim), jnp.float32), jnp.zeros((dim,), jnp.float32),
          jnp.zeros((history, dim), jnp.float32), jnp.zeros((dim,), jnp.float32))


def measure_response(generate, params, dim, key, rhos=RESPONSE_RHO, pairs=RESPONSE_PAIRS):
  """Mean cosine similarity of generated pairs whose noises correlate by each rho."""
  out = []
  for i, rho in enumerate(rhos):
    k1, k2 = jax.random.split(jax.random.fold_in(key, i))
    z1 = jax.random.normal(k1, (pairs, dim), jnp.float32)
    z2 = rho * z1 + np.sqrt(max(0.0, 1.0 - rho * rho)) * jax.random.normal(k2, (pairs, dim))
    x1, x2 = (np.array(jax.device_get(generate(params, z)), np.float32) for z in (z1, z2))
    x1 /= np.linalg.norm(x1, axis=1, keepdims=True)
    x2 /= np.linalg.norm(x2, axis=1, keepdims=True)
    out.append(float(np.mean(np.sum(x1 * x2, axis=1))))
  return out


def repeat_excess(weights_pk, group_t, lengths, repeats, jitter, rates, lags):
  """`[profiles, lags]`: the noise correlation that each profile's tracks gain at
  each lag from their sections (a loop of period 16 raises lag 16), measured
  on the generator's own noise (`SIM_DIM` dimensions, one synthetic track per
  real one, with its length, profile and repetition; every k-th track, so
  that about `SIM_ROWS` rows are generated)."""
  rng = np.random.default_rng(FIT_SEED)
  group_t = np.asarray(group_t)
  every = -(-int(np.sum(lengths)) // SIM_ROWS)
  chosen = np.arange(0, len(lengths), every)
  sections = stack_sections([track_sections(rng, int(lengths[i]), repeats[i], jitter)
                             for i in chosen], chosen, group_t[chosen])
  group_t = group_t[chosen]
  bounds = np.cumsum([0] + [int(lengths[i]) for i in chosen]).astype(np.int64)
  plan = {'rates': list(rates), 'scales': scales(weights_pk).tolist(),
          'history': history_rows(lengths[chosen])}
  mesh = sharding.data_mesh(jax.local_devices()[:1])
  z = np.concatenate([np.asarray(z_bd) for _, z_bd in shard_noise(
      plan, FIT_SEED, 0, bounds, sections, SIM_BATCH, SIM_DIM, mesh)])[:bounds[-1]]
  sim_tl = temporal.lag_similarity(rows_lib.ArrayRows(z), bounds, lags)
  alone = temporal.component_correlation(rates, lags) @ np.asarray(weights_pk, np.float64).T
  # A group left without a simulated track gains nothing.
  return np.stack([np.nan_to_num(temporal.nanmean(sim_tl[group_t == g]) - alone[:, g])
                   for g in range(len(weights_pk))])


def fit(response_sim, real_rows, bounds, tracks=None, profiles=PROFILES, rates=RATES,
        lags=temporal.LAGS):
  """The repetition of each track and the weights of each profile, from the
  measured response (at `RESPONSE_RHO`) and the real tracks (`tracks`: their
  indices, default all); returns the fit's dict without its 'sampler' and
  'source' keys.

  Real tracks' lag similarity includes what their repeats add, so the
  weights are fitted twice: the second time to the target less the excess
  the first weights' tracks gain from their sections (`repeat_excess`)."""
  tracks = np.arange(len(bounds) - 1) if tracks is None else np.asarray(tracks)
  response = np.maximum.accumulate(response_sim)
  lengths = temporal.track_lengths(bounds)[tracks]
  strong = float(np.interp(STRONG_RHO, RESPONSE_RHO, response))
  matches = best_n, lag_n = temporal.repetition(real_rows, bounds, tracks=tracks)
  jitter = temporal.offset_steps(best_n, lag_n, strong)
  repeats = []
  for i, s in enumerate(temporal.repeat_statistics(best_n, lag_n, bounds, tracks, strong)):
    repeats.append({
        'p': repeat_probability(s['share'], int(lengths[i]), s['lags'], jitter, [FIT_SEED, i]),
        'share': s['share'], 'lags': s['lags'],
        'rhos': [float(v) for v in temporal.noise_targets(s['levels'], RESPONSE_RHO,
                                                          response_sim)]})

  sim_tl = temporal.lag_similarity(real_rows, bounds, lags, tracks)
  profiles = min(profiles, len(tracks))
  group_t = temporal.profile_groups(sim_tl, profiles)
  # Lags longer than every track of a group: as far apart as unrelated windows.
  target_pl = np.stack([np.nan_to_num(temporal.nanmean(sim_tl[group_t == g]), nan=response_sim[0])
                        for g in range(profiles)])
  rho_pl = temporal.noise_targets(target_pl, RESPONSE_RHO, response_sim)
  weights_pk = [temporal.fit_weights(rho, lags, rates) for rho in rho_pl]
  excess_pl = repeat_excess(weights_pk, group_t, lengths, repeats, jitter, rates, lags)
  out = []
  for g in range(profiles):
    w = temporal.fit_weights(np.maximum(rho_pl[g] - excess_pl[g], 0.0), lags, rates)
    achieved_rho = temporal.component_correlation(rates, lags) @ w + excess_pl[g]
    out.append({'weights': [float(v) for v in w], 'target': [float(v) for v in target_pl[g]],
                'repeat_excess': [float(v) for v in excess_pl[g]],
                'noise_correlation': [float(v) for v in achieved_rho],
                'predicted': [float(v) for v in np.interp(achieved_rho, RESPONSE_RHO, response)]})
  return {'generator': GENERATOR, 'rates': list(rates), 'lags': list(lags), 'profiles': out,
          'track_profile': [int(g) for g in group_t],
          'track_lengths': [int(n) for n in lengths],
          'repeats': repeats, 'jitter': jitter, 'strong': strong,
          'response': {'rho': list(RESPONSE_RHO), 'similarity': list(response_sim)},
          'real': temporal.summary(real_rows, bounds, lags, tracks=tracks, matches=matches)}

def fit_tracks(count):
  """Indices of the training tracks the fit reads: at most `FIT_TRACKS`, evenly spread."""
  return np.unique(np.linspace(0, count - 1, min(count, FIT_TRACKS)).astype(np.int64))


def read(workdir):
  path = pathlib.Path(workdir) / FILE
  return files.read_json(path) if path.exists() else None


def ensure_fit(sampler, progress=False, devices=None):
  """The temporal fit of a run's `rfp.generator.Sampler`, computed and saved as
  WORKDIR/temporal.json unless it is there for the sampler's settings."""
  workdir, run_config = sampler.workdir, sampler.run_config
  saved = read(workdir)
  if (saved and saved.get('sampler') == sampler.settings and saved.get('generator') == GENERATOR
      and saved.get('rates') == list(RATES)):
    return saved
  bounds, source = training_tracks(run_config)
  real = data.open_embeddings(run_config.data.train)
  mesh = sharding.data_mesh(devices or jax.local_devices())
  response = measure_response(sampler.generator(mesh),
                              sharding.put_replicated(sampler.params, mesh),
                              sampler.model_cfg.dim,
                              jax.random.key(FIT_SEED, impl=noise_lib.RNG_IMPL),
                              pairs=sharding.round_up(RESPONSE_PAIRS, mesh))
  count = len(bounds) - 1
  chosen = fit_tracks(count)
  saved = {'sampler': sampler.settings, **fit(response, real, bounds, chosen),
           'source': {'train': str(run_config.data.train), 'tracks': source,
                      'tracks_used': len(chosen), 'tracks_in_file': count}}
  files.write_json(workdir / FILE, saved)
  if progress:
    print(f'track noise fitted to {len(bounds) - 1} training tracks ({workdir / FILE})')
  return saved


def manifest_entry(saved, length=None):
  """The manifest's `tracks` entry: everything that fixes a track shard's layout
  and noise, from a fit (`ensure_fit`) and `sample.track_length`."""
  weights = [p['weights'] for p in saved['profiles']]
  return {'generator': saved['generator'], 'rates': saved['rates'], 'weights': weights,
          'scales': scales(weights).tolist(),
          'length': int(length) if length else 'drawn from the training tracks',
          'track_lengths': saved['track_lengths'], 'track_profile': saved['track_profile'],
          'repeats': [{k: r[k] for k in ('p', 'lags', 'rhos')} for r in saved['repeats']],
          'jitter': saved['jitter'],
          'history': history_rows(saved['track_lengths'], length),
          'layout': 'default_rng([seed, shard]) draws a training track per track: its length '
                    '(unless fixed), profile and repetition, then its sections '
                    '(tracks.track_sections); the last track is cut at the shard end',
          'noise': 'z = s0 eps + sum_k s_k u_k + s_m m in new sections (u_k AR(1) of rate a_k, '
                   'm MA(1), restarted per track); z = rho z_source + sqrt(1 - rho^2) y in '
                   "repeats (y the same process, restarted per section and period); eps the rows' "
                   'noise; innovations normal(fold_in(block key, 1)), shared by y',
          'bounds_files': 'shard-{shard:05d}.bounds.npy',
          'fit': {'source': saved['source'], 'lags': saved['lags'], 'strong': saved['strong'],
                  'target': [p['target'] for p in saved['profiles']],
                  'predicted': [p['predicted'] for p in saved['profiles']]}}


def shard_layout(entry, seed, shard, rows):
  """(bounds, `Sections`) of one shard under a manifest's `tracks` entry."""
  length = entry['length'] if isinstance(entry['length'], int) else None
  return layout(seed, shard, rows, entry['track_lengths'], entry['track_profile'],
                length, entry['repeats'], entry['jitter'])


def shard_noise(entry, seed, shard, bounds, sections, batch_size, dim, mesh):
  """Yields (start, z_bd) over a track shard's batches, in order (each carries the last's state)."""
  rates, history = tuple(entry['rates']), int(entry['history'])
  noise = make_track_noise(dim, batch_size, mesh, rates, history)
  state = initial_state(dim, rates, history)
  for start in range(0, int(bounds[-1]), batch_size):
    inputs = row_inputs(bounds, sections, entry['scales'], start, start + batch_size)
    z_bd, state = noise(np.uint32(seed), np.int32(shard), np.int32(start), state, inputs)
    yield start, z_bd
