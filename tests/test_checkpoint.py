"""Checkpoints: a state saved is the state restored, onto whatever devices exist."""

import jax
import jax.numpy as jnp
import numpy as np

from rfp import checkpoint, files


def test_save_then_restore_round_trips_state_and_meta(tmp_path):
  latest, _ = checkpoint.managers(tmp_path)
  state = {'step': jnp.array(5, jnp.int32), 'params': {'w': jnp.arange(6.0).reshape(2, 3)}}
  checkpoint.save(latest, state, {'best_fd': 0.5})
  checkpoint.save(latest, state, {'best_fd': 0.25})  # Same step, newer metadata.
  restored, meta = checkpoint.restore(checkpoint.managers(tmp_path)[0])
  assert meta == {'best_fd': 0.25} and int(restored['step']) == 5
  np.testing.assert_array_equal(restored['params']['w'], state['params']['w'])
  assert restored['params']['w'].sharding.device_set <= set(jax.local_devices())
  assert files.checkpoint_step(tmp_path, 'latest') == 5


def test_restore_of_an_empty_run_is_none(tmp_path):
  assert checkpoint.restore(checkpoint.managers(tmp_path)[1]) == (None, None)
