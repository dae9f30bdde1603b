"""The sampling temperature: picked by the probe criterion, used by the sampler."""

import json

import ml_collections

from rfp import calibration


def test_calibrate_picks_the_temperature_with_the_smallest_gaps():
  gaps = {1.0: {100: -0.03, 1000: -0.04}, 0.9: {100: -0.01, 1000: -0.012},
          0.8: {100: 0.004, 1000: 0.006}, 0.7: {100: 0.02, 1000: 0.03}}
  out = calibration.calibrate(gaps.get, step=40, temperatures=tuple(gaps))
  assert out['temperature'] == 0.8 and out['step'] == 40
  assert out['gaps']['0.9'] == {'100': -0.01, '1000': -0.012}
  flat = calibration.calibrate(lambda t: {10: 0.0}, step=1, temperatures=(1.0, 0.9))
  assert flat['temperature'] == 1.0  # Ties keep the sampler as trained.


def test_the_sampler_uses_the_calibration_of_its_checkpoint(tmp_path):
  cfg = ml_collections.ConfigDict({'temperature': None})
  assert calibration.temperature(cfg, tmp_path, step=40) == 1.0  # Not calibrated.
  (tmp_path / calibration.FILE).write_text(json.dumps({'step': 40, 'temperature': 0.85}))
  assert calibration.temperature(cfg, tmp_path, step=40) == 0.85
  assert calibration.temperature(cfg, tmp_path, step=39) == 1.0  # Another checkpoint.
  cfg.temperature = 0.95
  assert calibration.temperature(cfg, tmp_path, step=40) == 0.95
