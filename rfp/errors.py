"""The one error type users see: a bad input, reported as a single line."""


class InputError(Exception):
  """A problem with something the user gave us (a file, a flag, a config key).

  The message names the input and the problem; command-line entry points print
  it as one line and exit non-zero without a traceback.
  """
