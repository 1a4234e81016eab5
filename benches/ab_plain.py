#!/usr/bin/env python3
"""A/B comparison of two or more builds of the plain layer benchmark (benches/norm_plain.rs),
alternated round by round in one session, so that the shared machine's drift hits every
build alike.

    cargo bench --features wgpu,ndarray --bench norm_plain --no-run   # once per build;
    cp <the executable it names> /tmp/ab/before                      # then change, rebuild,
    cp <the executable it names> /tmp/ab/after                       # copy again
    python3 benches/ab_plain.py /tmp/ab/before /tmp/ab/after [--only TEXT] [--rounds 5]

Prints, per case and mode, each build's lowest time over the rounds (ms) and its ratio to
the first build's.
"""
import argparse
import collections
import re
import subprocess

LINE = re.compile(r"^(.*?\))\s+train_fwd\s+([\d.]+) ms \| train_fwd_bwd\s+([\d.]+) ms.*"
                  r"\| eval_fwd\s+([\d.]+) ms")
MODES = ["train_fwd", "train_fwd_bwd", "eval_fwd"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", help="norm_plain executables, the first the baseline")
    parser.add_argument("--only", default="", help="run only the cases whose label has this text")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best = collections.defaultdict(lambda: float("inf"))
    for _ in range(args.rounds):
        for build in args.builds:
            out = subprocess.run([build, "--only", args.only], capture_output=True, text=True,
                                 check=True).stdout
            for line in out.splitlines():
                if match := LINE.match(line):
                    case = match.group(1).strip()
                    for mode, ms in zip(MODES, match.groups()[1:]):
                        best[case, mode, build] = min(best[case, mode, build], float(ms))
    print(f"lowest ms over {args.rounds} rounds; ratio to {args.builds[0]}")
    for case in sorted({key[0] for key in best}):
        cells = []
        for mode in MODES:
            times = [best[case, mode, build] for build in args.builds]
            ratios = " ".join(f"{t / times[0]:.2f}" for t in times[1:])
            cells.append(f"{mode} {' '.join(f'{t:.3f}' for t in times)} ({ratios})")
        print(f"{case:44} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
