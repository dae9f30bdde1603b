"""The one error type and the checks that raise it."""

import re

import pytest

from rfp.errors import InputError, check_positive_int


def test_positive_integers_are_checked_in_one_line():
  check_positive_int(3, 'sample.n')
  for value in (0, -1, True, 2.0, '4'):
    with pytest.raises(InputError, match=re.escape(f'sample.n={value!r}: expected a positive')):
      check_positive_int(value, 'sample.n')
