"""Where an ELECTRA-Small pre-training step spends its time, by TensorFlow op type.

  python benchmarks/profile_pretraining.py [--steps 2] [--hparams '{"mixed_precision": "bfloat16"}']

Traces `--steps` train steps of the benchmark's workload (bench_pretraining.py) with the TF
profiler and sums the host op events by op type (self time on all threads, so the total is
thread-seconds, about cores x wall seconds when both cores are busy). The table names what to
optimize next; bench_pretraining.py measures the effect.
"""

import argparse
import collections
import glob
import json
import os
import tempfile
import time

import tensorflow as tf
from pretraining_workload import BATCH, LENGTH, make_pretrainer
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Trace events that contain other ops' events rather than being ops themselves.
_ENVELOPES = ("Process", "Run", "PartitionedCall", "StatefulPartitionedCall", "While")


def phase(op_name):
    """Which part of the step an op belongs to, from its name scope."""
    if "gradient_tape" in op_name:
        return "backward"
    if "/optimizer" in op_name.lower() or "adam" in op_name.lower() or "clip" in op_name.lower():
        return "optimizer"
    return "forward and other"


def op_times(logdir, key):
    """{key(op name, op type): [seconds, count]} of the host's TF op events in a profiler trace."""
    totals = collections.defaultdict(lambda: [0.0, 0])
    for path in glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {i: m.name for i, m in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    name = names.get(event.metadata_id, "?")
                    if ":" not in name:  # TF op events are "name:Type"
                        continue
                    op_name, op_type = name.rsplit(":", 1)
                    if op_type in _ENVELOPES or op_type.startswith("__inference"):
                        continue
                    totals[key(op_name, op_type)][0] += event.duration_ps * 1e-12
                    totals[key(op_name, op_type)][1] += 1
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--hparams", default="{}")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    loop = make_pretrainer(json.loads(args.hparams), args.steps).train_loop
    loop._loop_fn(tf.constant(1))  # pylint: disable=protected-access
    logdir = tempfile.mkdtemp()
    start = time.perf_counter()
    tf.profiler.experimental.start(logdir)
    loop._loop_fn(tf.constant(args.steps))  # pylint: disable=protected-access
    tf.profiler.experimental.stop()
    wall = time.perf_counter() - start
    print(
        f"{args.steps} steps in {wall:.1f} s wall ({BATCH * LENGTH * args.steps / wall:.0f} "
        f"tokens/s under the profiler)"
    )
    for title, key in (
        ("phase", lambda name, op_type: phase(name)),
        ("op type", lambda name, op_type: op_type),
    ):
        totals = op_times(logdir, key)
        busy = sum(t for t, _ in totals.values())
        print(f"\n{title:40s} {'seconds':>8s} {'share':>6s} {'count':>7s}")
        for name, (seconds, count) in sorted(totals.items(), key=lambda kv: -kv[1][0])[: args.top]:
            print(f"{name:40s} {seconds:8.2f} {seconds / busy:6.1%} {count:7d}")
        print(f"{'total op time':40s} {busy:8.2f}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
