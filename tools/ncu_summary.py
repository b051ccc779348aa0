#!/usr/bin/env python3
"""Sum ncu's per-kernel durations by kernel name (a CSV from `ncu --csv --metrics gpu__time_duration.sum`).

    ncu --csv --metrics gpu__time_duration.sum --launch-skip S --launch-count N CMD > k.csv
    tools/ncu_summary.py k.csv [--steps N]

Each kernel runs alone under ncu, so the sum is the step's time without launch gaps: compared with the step's
real time it says how much of it is kernels and how much is waiting between them."""
import csv, sys, collections, re

def main():
    path = sys.argv[1]
    steps = int(sys.argv[sys.argv.index('--steps') + 1]) if '--steps' in sys.argv else 1
    rows = [r for r in csv.reader(l for l in open(path) if l.startswith('"'))]
    head = rows[0]
    ki, vi, ui = head.index('Kernel Name'), head.index('Metric Value'), head.index('Metric Unit')
    tot = collections.OrderedDict()
    for r in rows[1:]:
        name = re.sub(r'\(.*', '', r[ki]).replace('void ', '')
        v = float(r[vi].replace(',', ''))
        v = v / 1000 if r[ui] in ('ns', 'nsecond') else v * (1000 if r[ui] in ('ms', 'msecond') else 1)
        c, s = tot.get(name, (0, 0.0))
        tot[name] = (c + 1, s + v)
    all_us = sum(s for _, s in tot.values())
    for name, (c, s) in sorted(tot.items(), key=lambda kv: -kv[1][1]):
        print(f'{s / steps:9.1f} us/step {100 * s / all_us:5.1f}%  {c / steps:6.1f} launches  {s / c:7.2f} us each  {name[:90]}')
    print(f'{all_us / steps:9.1f} us/step in {sum(c for c, _ in tot.values()) / steps:.0f} kernels')

if __name__ == '__main__':
    main()
