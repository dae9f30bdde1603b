"""The whole pipeline from each system's own files, written from the shipped data.

For each system: `build_data.py --layout` writes data/ in its layout (NAFP,
GraFPrint and PeakNetFP: db.mm, query.mm, dummy_db.mm; NMFP: database.mm +
database.csv, one .npy per query), then `train.py --config configs/SYSTEM.py`,
and `evaluate.py` (which samples what it needs) read those files and nothing
else, pointed at them by one flag (`--nafp DIR`, `--nmfp DIR`). The model is
the small size (`--config.size=small`, the demo's), so the run fits a CPU;
each system keeps its own index settings. Only the command-line scripts are
called.

  python bench/layouts.py                          # all four, runs/layouts/
  python bench/layouts.py --systems nmfp --epochs 3

Writes OUT/layouts.md and OUT/layouts.json; each phase's output goes to
OUT/<system>/<phase>.log. A system whose eval/results.json exists is only read.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

SYSTEMS = {'nafp': 'nafp', 'grafprint': 'nafp', 'peaknetfp': 'nafp', 'nmfp': 'nmfp'}
EVAL = {'eval.sizes': [1_000, 10_000, 30_000, 100_000], 'eval.repeats': 1}


def _flags(items):
  return [f'--config.{k}={v!r}' for k, v in items.items()]


def _run(cmd, log_path):
  t0 = time.perf_counter()
  with open(log_path, 'w') as f:
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
  if proc.returncode:
    sys.exit(f'{cmd[0]} failed: see {log_path}')
  return time.perf_counter() - t0


def run_system(system, out, epochs):
  folder = out / system
  folder.mkdir(parents=True, exist_ok=True)
  files, workdir = folder / 'files', folder / 'run'
  results_path = workdir / 'eval' / 'results.json'
  seconds = {}
  if not results_path.exists():
    seconds['layout'] = _run(['build_data.py', '--layout', SYSTEMS[system], '--layout-out',
                              str(files)], folder / 'layout.log')
    seconds['train'] = _run(['train.py', '--config', f'configs/{system}.py', '--workdir',
                             str(workdir), '--no-progress', f'--{SYSTEMS[system]}', str(files),
                             *_flags({'size': 'small', 'train.epochs': epochs})],
                            folder / 'train.log')
    seconds['evaluate'] = _run(['evaluate.py', '--workdir', str(workdir), '--no-progress',
                                *_flags(EVAL)], folder / 'evaluate.log')
    (folder / 'seconds.json').write_text(json.dumps(seconds))
  results = json.loads(results_path.read_text())
  seconds = json.loads((folder / 'seconds.json').read_text())
  pool = max(p['size'] for p in results['scaling']['real'])
  at = lambda kind: next(p for p in results['scaling'][kind] if p['size'] == pool)
  per_length = {n: {kind: at(kind)['sequences'][n]['hr1']['mean'] for kind in ('real', 'synthetic')}
                for n in map(str, results['sequences']['lengths'])}
  return {'system': system, 'layout': SYSTEMS[system], 'pool': pool, 'seconds': seconds,
          'hr1_by_length': per_length, 'verdict': results['verdict']['status'],
          'index': results['settings']['eval']['index']}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--systems', default=','.join(SYSTEMS))
  parser.add_argument('--out', default='runs/layouts')
  parser.add_argument('--epochs', type=int, default=5)
  args = parser.parse_args()
  out = ROOT / args.out
  rows = [run_system(s, out, args.epochs) for s in args.systems.split(',')]
  (out / 'layouts.json').write_text(json.dumps(rows, indent=2) + '\n')
  lengths = list(rows[0]['hr1_by_length'])
  lines = ['| system | layout | IVF nlist/nprobe | ' + ' | '.join(
      f'HR@1 % {n} seg. real / synthetic' for n in lengths) + ' | minutes |',
           '|---|---|---|' + '---|' * len(lengths) + '---|']
  for r in rows:
    cells = [f'{100 * r["hr1_by_length"][n]["real"]:.1f} / {100 * r["hr1_by_length"][n]["synthetic"]:.1f}'
             for n in lengths]
    lines.append(f'| {r["system"]} | {r["layout"]} | {r["index"]["nlist"]}/{r["index"]["nprobe"]} | '
                 + ' | '.join(cells) + f' | {sum(r["seconds"].values()) / 60:.1f} |')
  table = '\n'.join(lines) + f'\n\nAt the whole real pool ({rows[0]["pool"]:,} rows).\n'
  (out / 'layouts.md').write_text(table)
  print(table)


if __name__ == '__main__':
  main()
