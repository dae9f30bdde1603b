"""Evaluating a trained run, one module per question (paper, Sec. 4):

  inputs     the evaluation files, checked once (eval.* paths or a NAFP folder)
  fidelity   FD, JS, PRDC of synthetic rows against real ones and real's floor
  hardness   how often the best distractor outscores a query's true match
  rates      hit rates: queries that find their row, or its track (the data build's too)
  scaling    the sweep: HR@1 and hardness against the number of distractors
  sequences  multi-segment queries searched as runs of consecutive rows of one track
  tail       an extreme-value estimate past the real pool, and the back-test of each estimate
  results    `plan` then `evaluate_run`: the results dict `rfp.report` writes

Every input is opened read-only; no module here imports JAX.
"""
