"""Where a pre-training step spends its time, by part of the model and by TensorFlow op type.

  python benchmarks/profile_pretraining.py [--model_size tiny,small] [--steps 2]
      [--hparams '{"mixed_precision": "bfloat16"}']

Traces `--steps` train steps of the benchmark's workload (pretraining_workload.py) for each model
size in turn, in one process, with the TF profiler (graph mode: XLA fuses ops out of sight), and
sums the host op events (self time on all threads, so thread-seconds, about cores x wall seconds
when both cores are busy) by `category` (matmul, attention probabilities, dropout, embeddings,
optimizer, input...), by op type and by op. The tables name what to optimize next;
bench_pretraining.py measures the effect.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pretraining_workload import (  # noqa: E402  pylint: disable=wrong-import-position
    BATCH,
    LENGTH,
    make_pretrainer,
)

# Trace events that contain other ops' events rather than being ops themselves.
_ENVELOPES = ("Process", "Run", "PartitionedCall", "StatefulPartitionedCall", "While")
_MATMULS = ("MatMul", "BatchMatMul", "Einsum")
_RANDOM_BITS = ("StatelessRandom", "Bitcast", "GreaterEqual", "Cast", "FloorMod", "Reshape")


def phase(op_name):
    """Which part of the step an op belongs to, from its name scope."""
    if "gradient_tape" in op_name:
        return "backward"
    if "/optimizer" in op_name.lower() or "adam" in op_name.lower() or "clip" in op_name.lower():
        return "optimizer"
    return "forward and other"


def category(op_name, op_type):
    """The part of the step an op serves, from its name scope and type (forward and backward)."""
    name = op_name.lower()
    matmul = any(m in op_type for m in _MATMULS)
    if "dataset" in op_type.lower() or op_type in ("ParseExampleV2", "IteratorGetNext"):
        return "input pipeline"
    if "adamweightdecay" in name or "global_norm" in name or "clip" in name:
        return "optimizer (AdamW, clipping)"
    if "dropout" in name:
        where = "attention probabilities" if "attention" in name else "hidden states"
        if any(op_type.startswith(r) for r in _RANDOM_BITS):
            return f"dropout random bits and mask, {where}"
        return f"dropout multiply, {where}"
    if "generator_predictions" in name and (matmul or "MatMul/Sum" in op_name):
        return "matmul, masked-LM logits (x vocab)"
    if matmul and "attention" in name and "einsum" in name and "dense" not in name:
        if any(p in name for p in ("/query", "/key", "/value", "/output")):
            return "matmul, dense layers"
        return "matmul, attention scores and context"
    if matmul:
        return "matmul, dense layers"
    if "softmax" in op_type.lower() and "attention" in name:
        return "attention softmax"
    if "attention" in name and "layer_norm" not in name:
        return "attention probabilities, other elementwise (mask, softmax grad, scale, bias)"
    if "embeddings" in name or op_type == "UnsortedSegmentSum":
        return "embeddings (lookup, LayerNorm, gradient scatter)"
    if "layer_norm" in name:
        return "LayerNorm"
    if "intermediate" in name or "gelu" in name:
        return "GELU and FFN biases"
    if "electra" not in name and "generator" not in name and "discriminator" not in name:
        return "losses, masking, sampling (outside the networks)"
    return "other"


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
                    op_name, op_type = (part.strip() for part in name.rsplit(":", 1))
                    if op_type in _ENVELOPES or op_type.startswith("__inference"):
                        continue
                    totals[key(op_name, op_type)][0] += event.duration_ps * 1e-12
                    totals[key(op_name, op_type)][1] += 1
    return totals


def profile(model_size, hparams, steps):
    """(wall seconds, trace folder) of `steps` traced train steps of `model_size`."""
    loop = make_pretrainer(hparams, steps, model_size=model_size).train_loop
    loop._loop_fn(tf.constant(1))  # pylint: disable=protected-access
    logdir = tempfile.mkdtemp()
    start = time.perf_counter()
    tf.profiler.experimental.start(logdir)
    loop._loop_fn(tf.constant(steps))  # pylint: disable=protected-access
    tf.profiler.experimental.stop()
    return time.perf_counter() - start, logdir


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_size", default="small", help="comma-separated sizes")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--hparams", default="{}")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    model_sizes = args.model_size.split(",")
    traces = {}
    for size in model_sizes:
        wall, logdir = profile(size, json.loads(args.hparams), args.steps)
        traces[size] = logdir
        print(
            f"{size}: {args.steps} steps in {wall:.1f} s wall "
            f"({BATCH * LENGTH * args.steps / wall:.0f} tokens/s under the profiler)"
        )
    for title, key, top in (
        ("category", category, None),
        ("phase", lambda name, op_type: phase(name), None),
        ("op type", lambda name, op_type: op_type, args.top),
        ("op", lambda name, op_type: name[-60:] + ":" + op_type, args.top),
    ):
        totals = {size: op_times(logdir, key) for size, logdir in traces.items()}
        busy = {size: sum(t for t, _ in total.values()) for size, total in totals.items()}
        first = totals[model_sizes[0]]
        rows = sorted(set().union(*totals.values()), key=lambda k: -first.get(k, (0.0,))[0])
        header = "".join(f" {s + ' s/step':>13s} {'share':>6s}" for s in model_sizes)
        print(f"\n{title:70s}{header}")
        for row in rows[:top]:
            cells = ""
            for size in model_sizes:
                seconds = totals[size].get(row, (0.0,))[0]
                cells += f" {seconds / args.steps:13.3f} {seconds / busy[size]:6.1%}"
            print(f"{row[-70:]:70s}{cells}")
        total = "".join(f" {busy[s] / args.steps:13.3f} {'':6s}" for s in model_sizes)
        print(f"{'total op time':70s}{total}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
