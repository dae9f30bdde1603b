"""The sampling temperature, chosen on held-out tracks so that synthetic rows are as hard as real ones.

A flow trained for minutes blurs: its rows lie a little further from unseen
music than real rows do, so as distractors they are easier than real ones and
the extrapolated curve is optimistic (bench/RESULTS.md, Fidelity). Starting
the ODE from noise scaled by a temperature below 1 draws rows nearer the
data's modes. Once training ends, the temperature is chosen for the run's
`best` checkpoint by the same query-free probe criterion that selected it
(`rfp.evaluation.hardness`), on a fixed grid, and saved beside the run; the
sampler uses it unless `sample.temperature` says otherwise.

    WORKDIR/calibration.json   {'step', 'temperature', 'gaps': {temperature: {N: gap}}}
"""

import pathlib

from rfp import files
from rfp.evaluation import hardness

FILE = 'calibration.json'
# From no change down to a clearly narrower sampler; the probe gaps move
# smoothly with it, so a coarse grid is enough.
TEMPERATURES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7)


def calibrate(gaps_at, step, temperatures=TEMPERATURES):
  """{'step', 'temperature', 'gaps'}: the temperature whose probe gaps
  (`gaps_at(temperature)` -> {N: gap}) are smallest (ties: the highest)."""
  gaps = {t: gaps_at(t) for t in temperatures}
  best = min(temperatures, key=lambda t: (hardness.probe_criterion(gaps[t]), -t))
  return {'step': int(step), 'temperature': best,
          'gaps': {str(t): {str(n): g for n, g in gaps[t].items()} for t in temperatures}}


def read(workdir):
  """A run's calibration, or None where it has none (unfinished, or older)."""
  path = pathlib.Path(workdir) / FILE
  return files.read_json(path) if path.exists() else None


def temperature(sample_cfg, workdir, step):
  """`sample.temperature`, where None means the run's calibrated one for the
  checkpoint at `step` (1 where that checkpoint was not calibrated)."""
  if sample_cfg.temperature is not None:
    return float(sample_cfg.temperature)
  saved = read(workdir)
  return float(saved['temperature']) if saved and saved['step'] == step else 1.0
