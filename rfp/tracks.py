"""Synthetic tracks: the trained row model driven by temporally correlated noise.

A track's windows come from the same velocity network and solver as i.i.d.
rows; only their noise differs. Window t of a track starts from

    z_t = s_0 eps_t + sum_k s_k u_k,t,      s_k = sqrt(w_k),  s_0 = sqrt(1 - sum_k w_k)

where eps is the row sampler's own noise (`rfp.noise.make_noise`) and u_k
are independent stationary AR(1) processes of fixed rates a_k (`RATES`; rate
1 holds one value for the whole track), restarted at each track's first
window. Every window's noise is exactly N(0, I), so each window is
distributed as a row of the row sampler (same single-window hardness),
while consecutive windows are correlated: the noise correlation at lag k is
sum_k w_k a_k^lag.

The weights are fitted through the model (`fit`): the mean output cosine of
two windows whose noises correlate by rho is measured on a grid of rho (it
grows with rho), the real training tracks' lag-similarity curve is read off
it as a noise correlation per lag, and `rfp.temporal.fit_weights` matches
that. Real tracks differ (ambient drones barely move, drum loops do), so the
training tracks are split into `PROFILES` groups by how fast they move and
each group gets weights of its own; a synthetic track takes the profile and
the length of a training track drawn at random.

    WORKDIR/temporal.json   the fit: {'sampler', 'rates', 'lags', 'profiles':
                            [{'weights', 'target', 'predicted'}], 'track_profile',
                            'track_lengths', 'response', 'real', 'source'}

It is written when training ends (beside calibration.json) and again by
`ensure_fit` whenever sampling asks for tracks with other sampler settings.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from rfp import data, files, noise as noise_lib, sharding, temporal
from rfp.bounds import bounds_from_ids

FILE = 'temporal.json'
GENERATOR = 'ar-noise/1'
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


def layout(seed, shard, rows, track_lengths, track_profile, length=None):
  """(bounds `[tracks + 1]` int64, profile `[tracks]`) of one shard of `rows` rows.

  Each track takes the length (unless `length` fixes it) and profile of a
  training track drawn at random; tracks are added until the shard is full
  and the last one is cut at its end. Fixed by (seed, shard) alone.
  """
  rng = np.random.default_rng([int(seed), int(shard)])
  ends, profiles, end = [], [], 0
  while end < rows:
    j = int(rng.integers(len(track_lengths)))
    end = min(rows, end + int(length or track_lengths[j]))
    ends.append(end)
    profiles.append(int(track_profile[j]))
  return np.array([0] + ends, np.int64), np.array(profiles, np.int64)


def row_inputs(bounds, profile_t, scales_pk, start, stop):
  """Per-row inputs of rows [start, stop) of a shard: (first-of-track flags `[b]`,
  noise scales `[b, 1 + rates]`), padded with repeats of the last row to `stop`."""
  rows = np.arange(start, stop)
  clipped = np.minimum(rows, bounds[-1] - 1)
  track = np.searchsorted(bounds, clipped, side='right') - 1
  first = (clipped == bounds[track]) & (rows == clipped)
  return first, np.asarray(scales_pk, np.float32)[profile_t[track]]


def scales(weights_pk):
  """Noise scales `[profiles, 1 + rates]` (white first) from AR weights `[profiles, rates]`."""
  w = np.asarray(weights_pk, np.float64)
  white = np.clip(1.0 - w.sum(axis=1, keepdims=True), 0.0, 1.0)
  return np.sqrt(np.hstack([white, w])).astype(np.float32)


@functools.cache
def make_track_noise(dim, batch_size, mesh, rates=RATES):
  """A jitted `(seed, shard, start, u_kd, first_b, scale_bk) -> (z_bd, u_kd)`.

  Noise of rows [start, start + batch) of a track shard, carrying the AR
  state `u_kd` from the batch before (zeros at the shard's start, whose
  first row starts a track). Rows are computed one after another in a scan,
  so every row takes the same operations whatever the batch size.
  """
  a_k = np.asarray(rates, np.float32)
  c_k = np.sqrt(1.0 - a_k.astype(np.float64) ** 2).astype(np.float32)
  eps = noise_lib.batch_normal(batch_size, (dim,))
  innovations = noise_lib.batch_normal(batch_size, (len(rates), dim), salt=1)

  @functools.partial(jax.jit, out_shardings=(sharding.batch_sharding(mesh),
                                             sharding.replicated(mesh)))
  def noise(seed, shard, start, u_kd, first_b, scale_bk):
    key = noise_lib.shard_key(seed, shard)

    def step(u_kd, row):
      eps_d, e_kd, first, scale_k = row
      u_kd = jnp.where(first, e_kd, a_k[:, None] * u_kd + c_k[:, None] * e_kd)
      z_d = scale_k[0] * eps_d
      for k in range(len(rates)):  # A fixed order of additions: reproducible sums.
        z_d = z_d + scale_k[k + 1] * u_kd[k]
      return u_kd, z_d

    u_kd, z_bd = jax.lax.scan(step, u_kd, (eps(key, start), innovations(key, start),
                                           first_b, scale_bk))
    return z_bd, u_kd

  return noise


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


def fit(response_sim, real_rows, bounds, tracks=None, profiles=PROFILES, rates=RATES,
        lags=temporal.LAGS):
  """The weights of each profile, from the measured response (at `RESPONSE_RHO`)
  and the real tracks (`tracks`: their indices, default all); returns the
  fit's dict without its 'sampler' and 'source' keys."""
  tracks = np.arange(len(bounds) - 1) if tracks is None else np.asarray(tracks)
  sim_tl = temporal.lag_similarity(real_rows, bounds, lags, tracks)
  profiles = min(profiles, len(tracks))
  group_t = temporal.profile_groups(sim_tl, profiles)
  out = []
  for g in range(profiles):
    # Lags longer than every track of the group: as far apart as unrelated windows.
    target = np.nan_to_num(temporal.nanmean(sim_tl[group_t == g]), nan=response_sim[0])
    rho = temporal.noise_targets(target, RESPONSE_RHO, response_sim)
    w = temporal.fit_weights(rho, lags, rates)
    achieved_rho = temporal.ar_correlation(rates, lags) @ w
    predicted = np.interp(achieved_rho, RESPONSE_RHO, np.maximum.accumulate(response_sim))
    out.append({'weights': [float(v) for v in w], 'target': [float(v) for v in target],
                'noise_correlation': [float(v) for v in achieved_rho],
                'predicted': [float(v) for v in predicted]})
  return {'generator': GENERATOR, 'rates': list(rates), 'lags': list(lags), 'profiles': out,
          'track_profile': [int(g) for g in group_t],
          'track_lengths': [int(n) for n in temporal.track_lengths(bounds)[tracks]],
          'response': {'rho': list(RESPONSE_RHO), 'similarity': list(response_sim)},
          'real': temporal.summary(real_rows, bounds, lags, tracks=tracks)}


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
  chosen = np.unique(np.linspace(0, count - 1, min(count, FIT_TRACKS)).astype(np.int64))
  saved = {'sampler': sampler.settings, **fit(response, real, bounds, chosen),
           'source': {'train': str(run_config.data.train), 'tracks': source,
                      'tracks_used': len(chosen), 'tracks_in_file': count}}
  files.write_json(workdir / FILE, saved)
  if progress:
    print(f'track noise fitted to {len(bounds) - 1} training tracks ({workdir / FILE})')
  return saved


def plan(saved, length=None):
  """The manifest's `tracks` entry: everything that fixes a track shard's layout
  and noise, from a fit (`ensure_fit`) and `sample.track_length`."""
  weights = [p['weights'] for p in saved['profiles']]
  return {'generator': saved['generator'], 'rates': saved['rates'], 'weights': weights,
          'scales': scales(weights).tolist(),
          'length': int(length) if length else 'drawn from the training tracks',
          'track_lengths': saved['track_lengths'], 'track_profile': saved['track_profile'],
          'layout': 'default_rng([seed, shard]) draws a training track per track: its length '
                    '(unless fixed) and profile; the last track is cut at the shard end',
          'noise': 'z = s0 eps + sum_k s_k u_k; u_k AR(1) of rate a_k restarted per track; '
                   "eps the rows' noise; innovations normal(fold_in(block key, 1))",
          'bounds_files': 'shard-{shard:05d}.bounds.npy',
          'fit': {'source': saved['source'], 'lags': saved['lags'],
                  'target': [p['target'] for p in saved['profiles']],
                  'predicted': [p['predicted'] for p in saved['profiles']]}}


def shard_layout(track_plan, seed, shard, rows):
  """(bounds, profile) of one shard under a manifest's `tracks` entry."""
  length = track_plan['length'] if isinstance(track_plan['length'], int) else None
  return layout(seed, shard, rows, track_plan['track_lengths'], track_plan['track_profile'],
                length)


def shard_noise(track_plan, seed, shard, bounds, profile_t, batch_size, dim, mesh):
  """Yields (start, z_bd) over a track shard's batches, in order (each carries the last's state)."""
  rates = tuple(track_plan['rates'])
  noise = make_track_noise(dim, batch_size, mesh, rates)
  u_kd = jnp.zeros((len(rates), dim), jnp.float32)
  for start in range(0, int(bounds[-1]), batch_size):
    first_b, scale_bk = row_inputs(bounds, profile_t, track_plan['scales'], start,
                                   start + batch_size)
    z_bd, u_kd = noise(np.uint32(seed), np.int32(shard), np.int32(start), u_kd, first_b, scale_bk)
    yield start, z_bd
