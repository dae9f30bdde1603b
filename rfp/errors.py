"""The one error type users see: a bad input, reported as a single line."""

import numbers


class InputError(Exception):
  """A problem with something the user gave us (a file, a flag, a config key).

  The message names the input and the problem; command-line entry points print
  it as one line and exit non-zero without a traceback.
  """


def check_positive_int(value, name):
  """InputError unless `value` (of setting `name`) is an integer above 0 (not a bool)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
    raise InputError(f'{name}={value!r}: expected a positive integer')
