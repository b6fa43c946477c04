"""Distillation against training from scratch, and the distillation step's cost (issue 13).

  python benchmarks/bench_distillation.py [--output_dir /tmp/bench_distill] [--steps 400]

On the bundled demo corpus (90% of its lines to train, the last 10% held out):
1. pre-trains a tiny BERT-like masked-LM teacher (hidden 64, 2 layers, 4 heads) with
   run_pretraining's library call (`electra_objective` false);
2. distills the `mobilebert_tiny` student (embedding_size 64, so it can take the teacher's
   embeddings) from it with `run_distillation`'s library call: `steps` / 2 steps of layer-wise
   transfer, then `steps` / 2 of soft-label masked LM (ratio 0.5), the original's loss factors;
3. trains the same student from scratch (no teacher) as a masked LM for `steps` steps;
4. evaluates the three (as trained, in this process) on the held-out lines with the same masks
   (`evaluate` of each over the held-out shards), and times the train steps
   (teacher's own step, distillation stage 1 and 2, the student alone) at the same batch.
Prints a Markdown table for BENCHMARKS.md. Same-run ratios only: the machine is shared.
"""

import argparse
import importlib.resources
import json
import os
import time

import tensorflow as tf
from absl import logging

from electra_tf import vocab as vocab_lib
from electra_tf.conversion.teacher import load_teacher
from electra_tf.data import pretraining_data
from electra_tf.pretraining import input_pipeline
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.distiller import DistillationHParams, Distiller
from electra_tf.pretraining.trainer import Pretrainer

SEQ = 64
BATCH = 32
EVAL = dict(eval_batch_size=64)  # + the number of eval batches, per config family
TEACHER = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=128,
)


def build_data(out, vocab_size):
    corpus = importlib.resources.files("electra_tf") / "resources" / "demo_corpus"
    lines = (corpus / "kjv_excerpt.txt").read_text(encoding="utf-8").splitlines()
    cut = int(len(lines) * 0.9)
    for name, part in (("train", lines[:cut]), ("heldout", lines[cut:])):
        os.makedirs(f"{out}/{name}/corpus", exist_ok=True)
        with open(f"{out}/{name}/corpus/text.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(part) + "\n")
    vocab = f"{out}/train/vocab.txt"
    if not os.path.exists(vocab):
        vocab_lib.learn_wordpiece_vocab(f"{out}/train/corpus", vocab, vocab_size=vocab_size)
    for name in ("train", "heldout"):
        if name == "heldout":
            tf.io.gfile.copy(vocab, f"{out}/heldout/vocab.txt", overwrite=True)
        if pretraining_data.read_dataset_info(f"{out}/{name}/pretrain_tfrecords") is None:
            pretraining_data.build_dataset(
                pretraining_data.BuildOptions(
                    corpus_dir=f"{out}/{name}/corpus",
                    vocab_file=f"{out}/{name}/vocab.txt",
                    output_dir=f"{out}/{name}/pretrain_tfrecords",
                    max_seq_length=SEQ,
                    num_out_files=4 if name == "train" else 1,
                    overwrite=True,
                )
            )
    return len(open(vocab, encoding="utf-8").read().splitlines())


def heldout_records(out):
    return f"{out}/heldout/pretrain_tfrecords/pretrain_data.tfrecord*"


def teacher_config(out, vocab_size, steps):
    return PretrainingConfig(
        "teacher",
        f"{out}/train",
        electra_objective=False,
        model_size="small",
        model_hparam_overrides=TEACHER,
        embedding_size=64,
        vocab_size=vocab_size,
        max_seq_length=SEQ,
        train_batch_size=BATCH,
        learning_rate=1e-3,
        num_warmup_steps=steps // 10,
        num_train_steps=steps,
        save_checkpoints_steps=steps,
        iterations_per_loop=50,
        num_eval_steps=8,
        **EVAL,
    )


def student_config(out, name, vocab_size, steps, distill):
    values = dict(
        model_size="mobilebert_tiny",
        model_hparam_overrides={"embedding_size": 64},
        vocab_size=vocab_size,
        max_seq_length=SEQ,
        max_predictions_per_seq=int((0.15 + 0.005) * SEQ),  # as the teacher's config derives it
        train_batch_size=BATCH,
        learning_rate=1e-3,
        optimizer="adamw",
        save_checkpoints_steps=steps,
        iterations_per_loop=50,
        max_eval_steps=8,
        **EVAL,
    )
    if distill:
        values.update(
            teacher=f"{out}/train/models/teacher",
            layer_wise_warmup=True,
            num_distill_steps=steps // 2,
            num_train_steps=steps - steps // 2,
            num_warmup_steps=(steps - steps // 2) // 10,
            distill_ground_truth_ratio=0.5,
            hidden_distill_factor=100.0,
            attention_distill_factor=1.0,
            beta_distill_factor=5000.0,
            gamma_distill_factor=5.0,
        )
    else:
        values.update(num_train_steps=steps, num_warmup_steps=steps // 10)
    return DistillationHParams(name, f"{out}/train", **values)


def time_loop(train_loop, steps=20, repeats=3):
    """Best examples/s of `steps` more train steps (the loop function is already compiled)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        means, _ = train_loop._loop_fn(tf.constant(steps))
        float(means["loss"])  # wait for the result
        best = max(best, steps * BATCH / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default="/tmp/bench_distill")
    parser.add_argument("--steps", type=int, default=400, help="each model's training steps")
    parser.add_argument("--vocab_size", type=int, default=2000)
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    out = args.output_dir.rstrip("/")
    load_before = os.getloadavg()
    start = time.time()
    vocab_size = build_data(out, args.vocab_size)

    teacher = Pretrainer(teacher_config(out, vocab_size, args.steps))
    teacher.train()
    distilled = Distiller(
        student_config(out, "distilled", vocab_size, args.steps, True), load_teacher
    )
    distilled.train()
    scratch = Distiller(student_config(out, "scratch", vocab_size, args.steps, False))
    scratch.train()

    # Each trained model, as it is in this process, on the held-out lines (the same masks).
    held = input_pipeline.list_input_files(heldout_records(out))
    accuracy = {}
    for name, runner in (("teacher", teacher), ("distilled", distilled), ("scratch", scratch)):
        runner.files = held
        accuracy[name] = runner.evaluate()["masked_lm_accuracy"]

    throughput = {
        "teacher train step (masked LM)": time_loop(teacher.train_loop),
        "distillation stage 1 (teacher fwd + student)": time_loop(distilled.train_loop("warmup")),
        "distillation stage 2 (teacher fwd + student)": time_loop(distilled.train_loop("main")),
        "student alone (from scratch)": time_loop(scratch.train_loop("main")),
    }
    elapsed = time.time() - start
    teacher_rate = throughput["teacher train step (masked LM)"]
    print(
        f"\nHeld-out masked-LM accuracy ({args.steps} steps each, batch {BATCH}, length {SEQ}, "
        f"vocab {vocab_size}):\n"
    )
    print("| model | held-out masked-LM accuracy |\n| --- | ---: |")
    for name, value in accuracy.items():
        print(f"| {name} | {value:.4f} |")
    print(
        "\n| train step | examples/s | tokens/s | vs teacher's step |\n| --- | ---: | ---: | ---: |"
    )
    for name, rate in throughput.items():
        print(f"| {name} | {rate:.1f} | {rate * SEQ:,.0f} | {rate / teacher_rate:.2f}x |")
    print(
        f"\nload average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; "
        f"wall time {elapsed / 60:.1f} min"
    )
    with open(f"{out}/results.json", "w") as f:
        json.dump({"accuracy": accuracy, "throughput": throughput, "seconds": elapsed}, f)


if __name__ == "__main__":
    main()
