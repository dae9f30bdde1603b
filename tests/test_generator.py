"""The sampler of a trained run: its settings, read once."""

from rfp import generator


def test_sphere_defaults_to_what_the_training_rows_are():
  assert generator.resolve_sphere(None, {'not_unit_norm': 0}) is True
  assert generator.resolve_sphere(None, {'not_unit_norm': 3}) is False
  assert generator.resolve_sphere(False, {'not_unit_norm': 0}) is False
