"""The velocity network: shapes, initialisation, time conditioning, variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfp import cli, model as model_lib
from rfp.errors import InputError
from conftest import ROOT


def _cfg(**overrides):
  """The paper's model section for 128-d fingerprints (the config leaves the
  dimension to the data), made small unless `overrides` say otherwise."""
  config = cli.load_config(ROOT / 'configs' / 'base.py')
  for k, v in {'dim': 128, 'width': 64, 'depth': 3, 'hidden': 256, **overrides}.items():
    config.model[k] = v
  return config.model


def _init(cfg, rows=5, abstract=False):
  net = model_lib.from_config(cfg)
  x = jax.random.normal(jax.random.key(0), (rows, cfg.dim))
  init = lambda: net.init(jax.random.key(1), x, jnp.zeros(rows))
  return net, jax.eval_shape(init) if abstract else init(), x


def _kernels(params):
  return {'/'.join(str(k.key) for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(params)
          if path[-1].key == 'kernel'}


def test_zero_initialised_output_predicts_zero_velocity():
  net, params, x = _init(_cfg())
  assert net.apply(params, x, jnp.full(5, 0.3)).shape == (5, 128)
  np.testing.assert_array_equal(net.apply(params, x, jnp.full(5, 0.3)), 0.0)


@pytest.mark.parametrize('ffn,cond', [('gelu', 'all'), ('swiglu', 'first')])
def test_scalar_time_equals_per_row_time(ffn, cond):
  net, params, x = _init(_cfg(ffn=ffn, cond=cond))
  # Perturb so the output layer is not zero and time actually matters.
  params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(2), p.shape), params)
  scalar = net.apply(params, x, 0.7)
  per_row = net.apply(params, x, jnp.full(5, 0.7))
  np.testing.assert_allclose(scalar, per_row, rtol=1e-5, atol=1e-6)
  assert not np.allclose(scalar, net.apply(params, x, 0.2))


def test_flops_match_the_matmuls_on_the_row_path():
  for ffn in ('gelu', 'swiglu'):
    cfg = _cfg(ffn=ffn)
    _, params, _ = _init(cfg)
    # With adaLN in every block, Dense_0 is the time path (top-level time
    # embedding, per-block modulation); every other kernel is one multiply-add
    # per weight per row.
    row_path = [s for name, s in _kernels(params).items()
                if not name.startswith('params/Dense_0') and not ('Block' in name and name.endswith('Dense_0/kernel'))]
    assert model_lib.flops_per_row(cfg) == 2 * sum(int(np.prod(s)) for s in row_path)


def test_paper_table1_parameter_count():
  _, params, _ = _init(_cfg(width=768, depth=12, hidden=3072), rows=1, abstract=True)
  shapes = _kernels(params)
  assert shapes['params/Dense_1/kernel'] == (128, 768)  # Input projection d -> 768.
  assert shapes['params/Block_11/Dense_1/kernel'] == (768, 3072)
  assert shapes['params/Dense_2/kernel'] == (768, 128)  # Output layer 768 -> d.
  assert len([k for k in shapes if k.startswith('params/Block_')]) == 12 * 3


def test_bfloat16_matmuls_stay_close_to_float32():
  cfg32, cfg16 = _cfg(), _cfg(dtype='bfloat16')
  net32, params, x = _init(cfg32)
  params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(3), p.shape), params)
  out32 = net32.apply(params, x, 0.5)
  out16 = model_lib.from_config(cfg16).apply(params, x, 0.5)
  assert out16.dtype == jnp.float32
  assert float(jnp.abs(out16 - out32).max()) < 0.05 * float(jnp.abs(out32).max())


@pytest.mark.parametrize('key,value', [('ffn', 'relu'), ('cond', 'none'), ('dtype', 'float16')])
def test_bad_model_options_are_input_errors(key, value):
  with pytest.raises(InputError, match=f'model.{key}'):
    model_lib.from_config(_cfg(**{key: value}))
