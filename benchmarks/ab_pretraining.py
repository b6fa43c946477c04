"""Same-process A/B of pre-training steps: variants (model size, hparams) alternate step by step.

  python benchmarks/ab_pretraining.py --variants '{"tiny": {"model_size": "tiny"},
      "no attention dropout": {"model_size": "tiny",
                               "hparams": {"model_hparam_overrides":
                                           {"attention_probs_dropout_prob": 0.0}}}}'
      [--rounds 8] [--steps_per_call 1] [--json out.json]

Each variant is the benchmark's workload (pretraining_workload.py: batch 32, length 128) with its
own `model_size` (default small) and `hparams`. All are built in this process, traced and warmed
up, then timed in turns, one call of `--steps_per_call` steps each per round, so every variant
sees the same load; on a shared machine this is the only comparison that means something. Reports
each variant's median and best seconds per step and tokens/s, and the median over rounds of its
step time relative to the first variant's.
"""

import argparse
import json
import os
import statistics
import sys
import time

import bench_report
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pretraining_workload import (  # noqa: E402  pylint: disable=wrong-import-position
    BATCH,
    LENGTH,
    make_pretrainer,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", required=True, help="JSON {name: {model_size, hparams}}")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps_per_call", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    variants = json.loads(args.variants)
    loops = {}
    for name, spec in variants.items():
        unknown = set(spec) - {"model_size", "hparams"}
        if unknown:
            raise ValueError(f"--variants: {name!r} has unknown keys {sorted(unknown)}")
        loops[name] = make_pretrainer(
            spec.get("hparams", {}), args.steps_per_call, model_size=spec.get("model_size", "small")
        ).train_loop
        loops[name]._loop_fn(tf.constant(1))  # pylint: disable=protected-access
    steps = tf.constant(args.steps_per_call)
    seconds = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            start = time.perf_counter()
            means, _ = loop._loop_fn(steps)  # pylint: disable=protected-access
            float(means["loss"])  # waits for the step to finish
            seconds[name].append((time.perf_counter() - start) / args.steps_per_call)
    first = next(iter(seconds))
    results = {}
    print(
        f"{'variant':40s} {'median s/step':>13s} {'best':>6s} {'tokens/s':>9s} "
        f"{'vs ' + first[:12]:>15s}"
    )
    for name, times in seconds.items():
        ratio = statistics.median(t / f for t, f in zip(times, seconds[first]))
        results[name] = dict(
            variants[name],
            seconds_per_step=times,
            median_tokens_per_s=BATCH * LENGTH / statistics.median(times),
            time_vs_first=ratio,
        )
        print(
            f"{name[:40]:40s} {statistics.median(times):13.3f} {min(times):6.3f} "
            f"{results[name]['median_tokens_per_s']:9.0f} {ratio:14.3f}x"
        )
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
