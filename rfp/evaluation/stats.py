"""Standard errors of the figures that rest on a sample of queries.

A hit rate or a hardness is a mean over the same n queries, averaged over R
repeats (fresh distractor sets). Its standard error has a query term and a
distractor term; a difference between two curves judged on the same queries
is paired, so what the queries share cancels and its error is smaller than
the two errors together. Per-query flags travel in the sweep's points packed
to bits (`pack`), a few hundred characters for thousands of queries.
"""

import base64

import numpy as np


def standard_error(p, n, std=None, repeats=1):
  """Standard error of a rate `p`, a mean over `n` queries and `repeats` draws
  whose rates have sample std `std` (None: one draw).

  Query term p(1 - p)/n: binomial, exact for one draw; for a mean over draws
  an upper bound, since each query's own mean over draws lies in [0, 1] with
  mean p. Draw term std²/repeats. Both together count the queries' share of
  the draws' spread twice, so the figure errs on the wide side.
  """
  draws = 0.0 if std is None else std ** 2 / repeats
  return float(np.sqrt(p * (1 - p) / n + draws))


def paired_standard_error(a_rq, b_rq):
  """Standard error of mean(a) - mean(b), per-query flags `[repeats, queries]`
  of two curves on the same queries (their repeats need not pair up).

  Query term: the variance of each query's difference of its means over the
  repeats, / n; draw term: each side's variance over its repeats' rates, /R.
  """
  a_rq, b_rq = np.asarray(a_rq, np.float64), np.asarray(b_rq, np.float64)
  d_q = a_rq.mean(0) - b_rq.mean(0)
  draws = sum(x.mean(1).var(ddof=1) / len(x) for x in (a_rq, b_rq) if len(x) > 1)
  return float(np.sqrt(d_q.var(ddof=1) / len(d_q) + draws))


def pack(flags_q):
  """Per-query booleans as {'queries': n, 'bits': base64 of the packed bits}."""
  flags_q = np.asarray(flags_q, bool)
  return {'queries': len(flags_q), 'bits': base64.b64encode(np.packbits(flags_q)).decode()}


def unpack(packed):
  """The booleans `pack` packed, `[queries]`."""
  bits = np.frombuffer(base64.b64decode(packed['bits']), np.uint8)
  return np.unpackbits(bits, count=packed['queries']).astype(bool)
