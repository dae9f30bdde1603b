"""What the command-line entry points share: config files, overrides, errors.

Configs are plain Python files with a `get_config()` returning an
`ml_collections.ConfigDict` (the big_vision / flax-examples convention). Any
field can be overridden on the command line as `--config.train.epochs=3`.
"""

import argparse
import ast
import functools
import importlib.util
import inspect
import pathlib
import sys
import warnings

import ml_collections

from rfp import layouts
from rfp.errors import InputError

_PREFIX = '--config.'


def _module(path):
  """The config file at `path`, executed."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(f'{path}: config file not found')
  spec = importlib.util.spec_from_file_location(f'rfp_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # A config is user code: report any failure in one line.
    raise InputError(f'{path}: cannot load config: {type(e).__name__}: {e}') from e
  if not hasattr(module, 'get_config'):
    raise InputError(f'{path}: no get_config() function')
  return module


def load_config(path, overrides=()):
  """Loads `get_config()` from a config file and applies `key=value` overrides.

  An override of a top-level key that `get_config` takes as an argument (e.g.
  `size=small`) is passed to it, so every field that follows from it does;
  the other overrides apply after, and win.
  """
  module = _module(path)
  takes = inspect.signature(module.get_config).parameters
  args = {}
  for item in overrides:
    key, _, text = item.partition('=')
    if key in takes:
      args[key] = _value(text)
  try:
    config = module.get_config(**args)
  except (TypeError, ValueError) as e:
    raise InputError(f'{path}: {e}') from e
  config.lock()
  for item in overrides:
    if item.partition('=')[0] not in args:
      apply_override(config, item, source=path)
  return config


BASE_CONFIG = pathlib.Path(__file__).resolve().parent.parent / 'configs' / 'base.py'


def _fill(config, defaults):
  """Adds the fields of `defaults` that `config` lacks (recursively)."""
  for key, value in defaults.items():
    if key not in config:
      config[key] = value
    elif isinstance(value, ml_collections.ConfigDict) and isinstance(
        config[key], ml_collections.ConfigDict):
      _fill(config[key], value)


def run_config(run, path=None, overrides=(), source='config.json'):
  """The config of a command on a trained run, with the overrides applied.

  `run` is the run's config dict (its config.json). With `path`, the config
  comes from that file instead. Fields the run's file lacks (it may predate
  them) take the defaults of configs/base.py.
  """
  if path is not None:
    return load_config(path, overrides)
  config = ml_collections.ConfigDict(run)
  _fill(config, load_config(BASE_CONFIG))
  config.lock()
  for item in overrides:
    apply_override(config, item, source=source)
  return config


def _value(text):
  """A command-line value: a Python literal, else the text itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_override(config, item, source='config'):
  """Sets one `a.b.c=value` override; the value is a Python literal or a string."""
  key, sep, text = item.partition('=')
  if not sep:
    raise InputError(f'--config.{item}: expected --config.KEY=VALUE')
  *parents, leaf = key.split('.')
  node = config
  for i, name in enumerate(parents + [leaf]):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise InputError(f'--config.{key}: no such key in {source}'
                       f' (known here: {", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"})')
    if i < len(parents):
      node = node[name]
  value = _value(text)
  current = node[leaf]
  if isinstance(current, (list, tuple)) and isinstance(value, (int, float)):
    value = [value]
  try:
    node[leaf] = type(current)(value) if isinstance(current, tuple) else value
  except (TypeError, ValueError) as e:
    raise InputError(f'--config.{key}={text}: {e}') from e


def split_overrides(argv):
  """Separates `--config.KEY=VALUE` (or `--config.KEY VALUE`) from other args."""
  rest, overrides = [], []
  it = iter(argv)
  for arg in it:
    if arg.startswith(_PREFIX):
      body = arg[len(_PREFIX):]
      if '=' not in body:
        body += '=' + next(it, '')
      overrides.append(body)
    else:
      rest.append(arg)
  return rest, overrides


class Parser(argparse.ArgumentParser):
  """Reports a bad flag as one line (`error: ...`, exit 2), like every other input error."""

  def error(self, message):
    raise InputError(f'{message} (see --help)')


def make_parser(description, default_config, epilog=''):
  """A parser with the shared `--config` and `--quiet` flags; bad flags are one-line errors."""
  parser = Parser(
      description=description,
      epilog=(epilog + '\n\nAny config field can be overridden as '
              '--config.SECTION.KEY=VALUE, e.g. --config.train.epochs=3.').strip(),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', default=default_config, metavar='FILE',
                      help=f'config file with get_config() (default: {default_config})')
  # One flag for every command; sample.py called it --no-progress first.
  parser.add_argument('--quiet', '--no-progress', action='store_true', dest='quiet',
                      help='no progress bars')
  return parser


def add_layout_flags(parser):
  """`--nafp DIR`, `--nmfp DIR`: one flag points the config at a folder of a
  system's own files (`configs.base.layout_paths`); `--config.` overrides win."""
  group = parser.add_mutually_exclusive_group()
  for layout, files in layouts.LAYOUTS.items():
    group.add_argument(f'--{layout}', default=None, metavar='DIR',
                       help=f'folder in {layout.upper()}\'s layout ({files}) instead of the '
                            'config\'s file paths')


def layout_overrides(args, sections=('data', 'eval')):
  """The `key=value` overrides of the layout flag in `args` (`add_layout_flags`), for
  the config fields of `sections`; none without one."""
  for layout in layouts.LAYOUTS:
    folder = getattr(args, layout, None)
    if folder:
      if not pathlib.Path(folder).is_dir():
        raise InputError(f'--{layout} {folder}: folder not found')
      paths = _module(BASE_CONFIG).layout_paths(layout, folder, sections)
      return [f'{key}={value!r}' for key, value in paths.items()]
  return []


def parse(parser, argv=None):
  """Returns (args, config) with the layout flag's and then the overrides applied."""
  rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
  args = parser.parse_args(rest)
  return args, load_config(args.config, layout_overrides(args) + overrides)


def main(fn):
  """Runs `fn()`, turning input errors into one line on stderr and exit 2.

  An OSError (a disk filling up mid-run, a file vanishing) is one line too,
  with exit 1: outputs are checked before work starts (`files.check_output`),
  so this is the last resort, not the way problems are found.
  """

  @functools.wraps(fn)
  def wrapped(*a, **kw):
    warnings.formatwarning = lambda message, *_, **__: f'warning: {message}\n'
    try:
      return fn(*a, **kw)
    except InputError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except OSError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:
      print('interrupted: re-run the same command to resume', file=sys.stderr)
      sys.exit(130)

  return wrapped
