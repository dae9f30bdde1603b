"""The import graph: what each entry point loads, and no circle among rfp's modules."""

import ast
import json
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPT_ENV


def loaded_after(statement):
  """The top-level packages loaded by running `statement` in a fresh interpreter."""
  code = f'{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))'
  out = subprocess.run([sys.executable, '-c', code], env=SCRIPT_ENV, cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  return {name.split('.')[0] for name in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize('statement', [
    'import train; from rfp import distill, training',
    'import build_data; from rfp.audio import pipeline',
])
def test_training_and_the_data_build_load_no_faiss(statement):
  assert 'faiss' not in loaded_after(statement)


def test_evaluate_help_loads_no_jax():
  statement = ('import sys, evaluate\nsys.argv = ["evaluate.py", "--help"]\n'
               'try:\n  evaluate.main()\nexcept SystemExit:\n  pass')
  loaded = loaded_after(statement)
  assert 'jax' not in loaded and 'faiss' not in loaded


def test_configs_load_no_jax():
  assert 'jax' not in loaded_after('from configs import base, data; data.get_config()')


def module_imports(path, package='rfp'):
  """Every rfp module `path` imports, at its top or inside a function."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.startswith(package + '.')}
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] == package:
      for a in node.names:  # `from rfp import x` names a module where rfp/x.py exists.
        sub = f'{node.module}.{a.name}'
        path_of_sub = ROOT / sub.replace('.', '/')
        is_module = path_of_sub.with_suffix('.py').exists() or path_of_sub.is_dir()
        out.add(sub if is_module else node.module)
  return out


def test_no_import_cycle_among_rfp_modules():
  graph = {}
  for path in (ROOT / 'rfp').rglob('*.py'):
    name = '.'.join(path.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')
    graph[name] = module_imports(path) - {name}
  state = {}

  def visit(node, trail):
    state[node] = 'open'
    for dep in sorted(graph.get(node, ())):
      if state.get(dep) == 'open':
        pytest.fail('import cycle: ' + ' -> '.join(trail[trail.index(dep):] + [dep]))
      if dep not in state:
        visit(dep, trail + [dep])
    state[node] = 'done'

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
