#!/usr/bin/env python3
"""Side-by-side throughput of vaekit and a PyTorch reference on the five workloads.

Each round runs every workload once in vaekit's `bench` example (with each
allocator asked for) and once in the PyTorch reference bench, back to back, so
that the machine's drift falls on both alike. The table gives medians over the
rounds and the median of the per-round ratios.

    cargo build --release --example bench
    python3 scripts/compare_reference.py --rounds 5 \\
        --reference path/to/reference/bench.py --python path/to/venv/bin/python \\
        --allocators system,mimalloc --out target/compare.jsonl

To compare two builds of vaekit with each other and with PyTorch, copy one
build's bench binary aside and name both:

    python3 scripts/compare_reference.py --rounds 3 --reference ... --python ... \
        --vaekit before=/tmp/bench-before --vaekit after=target/release/examples/bench

The reference bench must accept `--model W1..W5 --data mnist10k --epochs N
--max-steps N --warmup-steps N --threads N --device cpu --out FILE` and write
`train_img_per_s`, `infer_img_per_s` and `peak_rss_mib` (a JSON list, one
record appended per run). Every raw record goes to `--out`, one JSON object per
line, so a table can be remade without rerunning.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# vaekit workload, reference id, timed training steps.
WORKLOADS = [
    ("dense-vae", "W1", 200),
    ("cvae-tf", "W2", 100),
    ("conv-vae-bn", "W3", 40),
    ("digit-cvae", "W4", 200),
    ("conv-ae", "W5", 100),
]
WARMUP = 20
ROOT = Path(__file__).resolve().parents[1]


def run_vaekit(exe, workload, steps, allocator, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [str(exe), "--workload", workload, "--steps", str(steps), "--warmup", str(WARMUP),
         "--allocator", allocator],
        check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"train": r["train_images_per_s"], "infer": r["infer_images_per_s"],
            "rss": r["peak_rss_mib"], "raw": r}


def run_reference(python, bench, wid, steps, threads):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        subprocess.run(
            [python, bench, "--model", wid, "--data", "mnist10k", "--epochs", "100",
             "--max-steps", str(steps + WARMUP), "--warmup-steps", str(WARMUP),
             "--threads", str(threads), "--device", "cpu", "--out", str(out)],
            check=True, capture_output=True, text=True)
        r = json.loads(out.read_text())[-1]
    return {"train": r["train_img_per_s"], "infer": r["infer_img_per_s"],
            "rss": r["peak_rss_mib"], "raw": r}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reference", required=True, help="the reference bench.py")
    p.add_argument("--python", required=True, help="a Python with torch")
    p.add_argument("--allocators", default="system", help="comma-separated: system,mimalloc")
    p.add_argument("--workloads", default=",".join(w for w, _, _ in WORKLOADS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="append raw records here (JSON lines)")
    p.add_argument("--vaekit", action="append", metavar="LABEL=PATH",
                   help="a vaekit `bench` binary, e.g. before=/tmp/bench-before (repeatable, to "
                        "compare builds side by side; default: this checkout's "
                        "target/release/examples/bench)")
    args = p.parse_args()

    default_exe = ROOT / "target" / "release" / "examples" / "bench"
    exes = [tuple(v.split("=", 1)) for v in args.vaekit] if args.vaekit else [("", default_exe)]
    # One column per (binary, allocator): `vaekit-<allocator>`, or
    # `vaekit-<label>-<allocator>` when binaries are compared.
    sides = [(f"vaekit-{label + '-' if label else ''}{a}", exe, a)
             for label, exe in exes for a in args.allocators.split(",")]
    chosen = [w for w in WORKLOADS if w[0] in args.workloads.split(",")]
    results = {}  # (workload, who) -> list of records
    for rnd in range(args.rounds):
        for name, wid, steps in chosen:
            runs = [(who, lambda exe=exe, a=a: run_vaekit(exe, name, steps, a, args.threads))
                    for who, exe, a in sides]
            runs.append(("pytorch", lambda: run_reference(args.python, args.reference, wid,
                                                          steps, args.threads)))
            # Alternate which side goes first, round by round.
            if rnd % 2:
                runs.reverse()
            for who, f in runs:
                r = f()
                results.setdefault((name, who), []).append(r)
                print(f"round {rnd + 1} {name:12} {who:16} train {r['train']:9.0f} "
                      f"infer {r['infer']:9.0f} rss {r['rss']:6.0f}", file=sys.stderr, flush=True)
                if args.out:
                    with open(args.out, "a") as f_out:
                        f_out.write(json.dumps({"round": rnd + 1, "workload": name, "who": who,
                                                **r["raw"]}) + "\n")

    med = statistics.median
    for phase in ("train", "infer"):
        print(f"\n{phase}ing images/s, medians of {args.rounds} rounds:\n")
        head = "| workload | " + " | ".join(who for who, _, _ in sides) + \
            " | PyTorch | " + " | ".join(f"{who} / PyTorch" for who, _, _ in sides) + " |"
        print(head)
        print("|---|" + "---:|" * (2 * len(sides) + 1))
        for name, _, _ in chosen:
            torch_runs = [r[phase] for r in results[(name, "pytorch")]]
            cells = []
            ratios = []
            for who, _, _ in sides:
                ours = [r[phase] for r in results[(name, who)]]
                cells.append(f"{med(ours):,.0f}")
                ratios.append(f"{med([o / t for o, t in zip(ours, torch_runs)]):.2f}")
            print(f"| {name} | " + " | ".join(cells) + f" | {med(torch_runs):,.0f} | " +
                  " | ".join(ratios) + " |")
    print("\npeak RSS MiB, medians:\n")
    for name, _, _ in chosen:
        parts = [f"{who} {med([r['rss'] for r in results[(name, who)]]):.0f}"
                 for who in [who for who, _, _ in sides] + ["pytorch"]]
        print(f"- {name}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
