"""Fidelity bench: are synthetic distractors as hard as real ones on every family?

For each embedding family of bench/families.py (built first if missing), with
the demo config's defaults and nothing per family: train a flow on the family's
flow_train.npy, sample twice the real pool, evaluate against the family's
references, queries and real pool at sizes 1,000, 10,000, 30,000 and the whole
pool. Only the command-line scripts are called (train.py, sample.py,
evaluate.py), so the bench follows whatever they do by default.

Hardness is the share of queries whose best distractor outscores their true
reference (exact search). The floor is how far a second real set (the
family's flow training rows, disjoint from the pool) lands from the real pool;
the excess is what synthetic rows add on top of it:

  excess = max(0, |synthetic - real| - |second real - real|)   in points

The second real set has fewer rows than the pool, so at the whole pool the
floor measured at the largest size it reached stands in (marked * in the
table).

  python bench/fidelity.py                            # every family, runs/fidelity/
  python bench/fidelity.py --families shipped,positive
  python bench/fidelity.py --quick                    # 2 epochs, runs/fidelity-quick/
  python bench/fidelity.py --commit 774be4e --out runs/fidelity-774be4e

The scripts run from the working tree, unless --commit names a commit: its
files are then extracted (git archive) into runs/fidelity-code/<commit>/ and
the scripts run from there, so edits made to the tree while the bench runs
(it takes half an hour) cannot mix code states within one table.

Run folders are OUT/<family>/ (checkpoints, samples, eval/results.json). A
family whose eval/results.json exists is only read again unless --force; an
interrupted run resumes (each script resumes itself). Writes OUT/fidelity.md
and OUT/fidelity.json; each phase's output goes to OUT/<family>/<phase>.log, its
timings and the commit it ran from to OUT/<family>/bench_run.json.
"""

import argparse
import json
import math
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import families as families_lib  # pylint: disable=wrong-import-position

ROOT = families_lib.ROOT
SIZES = (1_000, 10_000, 30_000)  # Then the whole pool.
QUICK_EPOCHS = 2


def log(msg):
  print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def run(cmd, code, logfile):
  """Runs one script from the folder `code`; its output goes to `logfile`."""
  with open(logfile, 'a') as f:
    f.write(f'$ {" ".join(cmd)}\n')
    f.flush()
    rc = subprocess.call(cmd, cwd=code, stdout=f, stderr=subprocess.STDOUT)
  if rc:
    tail = ''.join(open(logfile).readlines()[-15:])
    sys.exit(f'{cmd[1]} failed (exit {rc}); last lines of {logfile}:\n{tail}')


def git(*args):
  out = subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True)
  if out.returncode:
    sys.exit(f'git {" ".join(args)}: {out.stderr.strip()}')
  return out.stdout


def code_state(commit):
  """The commit the scripts run from; for the working tree also the files
  changed since it (at the family's start: later edits are not seen)."""
  if commit:
    return {'commit': commit, 'changed': []}
  return {'commit': git('rev-parse', '--short', 'HEAD').strip(),
          'changed': sorted(line[3:] for line in git('status', '--porcelain').splitlines())}


def checkout(rev):
  """(folder, short commit): the files of `rev`, extracted once under runs/fidelity-code/."""
  commit = git('rev-parse', '--short', f'{rev}^{{commit}}').strip()
  folder = ROOT / 'runs' / 'fidelity-code' / commit
  if not folder.exists():
    tmp = folder.with_name(commit + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)  # A half-extracted earlier attempt.
    tmp.mkdir(parents=True)
    archive = subprocess.run(['git', 'archive', commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(['tar', '-x', '-C', str(tmp)], input=archive.stdout, check=True)
    tmp.rename(folder)
  return folder, commit


def run_family(name, data, workdir, epochs, code, commit):
  """Train, sample, evaluate one family with the scripts in `code` (of `commit`,
  None: the working tree); returns seconds per phase and the code state."""
  workdir.mkdir(parents=True, exist_ok=True)
  state = code_state(commit)
  py = sys.executable
  pool = np.load(data / 'distractors.npy', mmap_mode='r').shape[0]
  # Two repeats of the whole pool (demo: eval.repeats=2) on disjoint rows.
  n = math.ceil(2 * pool / 10_000) * 10_000
  train = [py, 'train.py', '--config', 'configs/demo.py', '--workdir', str(workdir),
           f'--config.data.train={data / "flow_train.npy"}']
  if epochs:
    train.append(f'--config.train.epochs={epochs}')
  sample = [py, 'sample.py', '--workdir', str(workdir), '--n', str(n), '--shards', '4',
            '--no-progress']
  evaluate = [py, 'evaluate.py', '--workdir', str(workdir), '--out', str(workdir / 'eval'),
              f'--config.eval.reference={data / "reference.npy"}',
              '--config.eval.reference_tracks=None',
              f'--config.eval.queries={data / "queries.npy"}',
              f'--config.eval.ground_truth={data / "ground_truth.npy"}',
              f'--config.eval.real_distractors={data / "distractors.npy"}',
              f'--config.eval.sizes=[{",".join(map(str, SIZES + (pool,)))}]', '--quiet']
  seconds = {}
  for phase, cmd in (('train', train), ('sample', sample), ('evaluate', evaluate)):
    log(f'{name}: {phase} ...')
    t0 = time.time()
    run(cmd, code, workdir / f'{phase}.log')
    seconds[phase] = round(time.time() - t0, 1)
    log(f'{name}: {phase} done in {seconds[phase]:.0f} s')
  run_info = {'seconds': seconds, **state}
  (workdir / 'bench_run.json').write_text(json.dumps(run_info, indent=1) + '\n')
  return run_info


def summarise(results):
  """Rows of the table (one per size of the real curve) and the mean excess."""
  curves = {k: {p['size']: p for p in results['scaling'].get(k, [])}
            for k in ('real', 'synthetic', 'real2')}
  rows, floor, floor_size = [], None, None
  for size in sorted(curves['real']):
    real, syn = curves['real'][size], curves['synthetic'].get(size)
    r = real['hard']['mean']
    row = {'size': size, 'hard_real': 100 * r, 'hr1_real': 100 * real['hr1']['mean'],
           'hard_real2': None, 'hard_synthetic': None, 'hr1_synthetic': None,
           'excess': None, 'floor_from': None}
    if size in curves['real2']:
      r2 = curves['real2'][size]['hard']['mean']
      row['hard_real2'] = 100 * r2
      floor, floor_size = abs(r2 - r), size
    if syn is not None:
      s = syn['hard']['mean']
      row['hard_synthetic'], row['hr1_synthetic'] = 100 * s, 100 * syn['hr1']['mean']
      if floor is not None:
        row['excess'] = 100 * max(0.0, abs(s - r) - floor)
        row['floor_from'] = floor_size
    rows.append(row)
  excess = [r['excess'] for r in rows if r['excess'] is not None]
  return rows, (float(np.mean(excess)) if excess else None)


def fmt(v, spec='.1f'):
  return '—' if v is None else format(v, spec)


def markdown(table):
  lines = ['| family | distractors | hardness % real | second real | synthetic | excess (points) '
           '| HR@1 % real | HR@1 % synthetic |', '|---|---:|---:|---:|---:|---:|---:|---:|']
  for fam in table:
    for r in fam['rows']:
      mark = '*' if r['floor_from'] not in (None, r['size']) else ''
      lines.append(f'| {fam["family"]} | {r["size"]:,} | {fmt(r["hard_real"])} '
                   f'| {fmt(r["hard_real2"])} | {fmt(r["hard_synthetic"])} '
                   f'| {fmt(r["excess"], ".2f")}{mark} | {fmt(r["hr1_real"])} '
                   f'| {fmt(r["hr1_synthetic"])} |')
    lines.append(f'| **{fam["family"]}** | **mean excess** | | | | **{fmt(fam["mean_excess"], ".2f")}** | | |')
  lines.append('')
  lines.append('\\* floor |second real − real| taken at the largest size the second real set reached.')
  return '\n'.join(lines) + '\n'


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--families', default=','.join(families_lib.FAMILIES),
                      help=f'comma-separated subset of {",".join(families_lib.FAMILIES)} '
                      '(default: all)')
  parser.add_argument('--out', type=pathlib.Path, default=None,
                      help='run folders and the table (default: runs/fidelity/, with --quick '
                      'runs/fidelity-quick/); use one per --commit, as runs resume')
  parser.add_argument('--data', type=pathlib.Path, default=ROOT / 'runs' / 'families',
                      help='family folders of bench/families.py, built there if missing '
                      '(default: runs/families/)')
  parser.add_argument('--quick', action='store_true',
                      help=f'smoke run: {QUICK_EPOCHS} epochs instead of the config\'s')
  parser.add_argument('--commit', default=None,
                      help='run the scripts of this commit (extracted into runs/fidelity-code/) '
                      'instead of the working tree')
  parser.add_argument('--force', action='store_true',
                      help='run the scripts again even where eval/results.json exists (they '
                      'resume: delete a run folder to start it afresh)')
  args = parser.parse_args()
  names = [n for n in args.families.split(',') if n]
  unknown = sorted(set(names) - set(families_lib.FAMILIES))
  if unknown:
    parser.error(f'unknown families {",".join(unknown)}; choose from '
                 f'{",".join(families_lib.FAMILIES)}')
  out = (args.out or ROOT / 'runs' / ('fidelity-quick' if args.quick else 'fidelity')).resolve()
  data_root = args.data.resolve()
  code, commit = checkout(args.commit) if args.commit else (ROOT, None)

  table = []
  for name in names:
    data = data_root / name
    if not (data / 'family.json').exists():
      log(f'{name}: building the family in {data}')
      families_lib.build(name, ROOT / 'data', data_root)
    workdir = out / name
    results_path = workdir / 'eval' / 'results.json'
    if results_path.exists() and not args.force:
      log(f'{name}: {results_path} exists, reading it (--force to run again)')
    else:
      run_family(name, data, workdir, QUICK_EPOCHS if args.quick else None, code, commit)
    rows, mean_excess = summarise(json.loads(results_path.read_text()))
    info_path = workdir / 'bench_run.json'
    table.append({'family': name, 'rows': rows, 'mean_excess': mean_excess,
                  'family_stats': json.loads((data / 'family.json').read_text()),
                  'run': json.loads(info_path.read_text()) if info_path.exists() else None})

  md = markdown(table)
  out.mkdir(parents=True, exist_ok=True)
  (out / 'fidelity.md').write_text(md)
  (out / 'fidelity.json').write_text(json.dumps(table, indent=1) + '\n')
  print(md, end='')
  log(f'wrote {out / "fidelity.md"} and {out / "fidelity.json"}')


if __name__ == '__main__':
  main()
