"""Fine-tuning throughput: training and prediction examples/s of a classification model.

  python benchmarks/bench_finetuning.py [--shared ../shared] [--model_size small]
      [--max_seq_length 128] [--batch_size 32] [--steps 8] [--json out.json]

Runs run_finetuning's own pieces (FinetuningRunner: featurization, model, AdamW with layer-wise
decay, the shared TrainLoop, the distributed predictor) on the real Korean question-pair data in
../shared, from random weights (throughput does not depend on them). The first `--steps` steps
include tracing and are reported apart; the timed `--steps` steps after them include one
checkpoint write, as every real run ends with one. Prediction is timed on the dev split after a
first, tracing batch.
"""

import argparse
import math
import os
import sys
import tempfile
import time

import bench_report
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from electra_tf.finetuning.config import FinetuningConfig  # pylint: disable=wrong-import-position
from electra_tf.finetuning.runner import FinetuningRunner  # pylint: disable=wrong-import-position


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    parser.add_argument("--model_size", default="small")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="warm-up steps, then timed steps")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    source = os.path.join(args.shared, "finetune", "question_pair")
    vocab = os.path.join(args.shared, "vocab", "ko_cased_vocab.txt")
    if not (os.path.isdir(source) and os.path.exists(vocab)):
        sys.exit(f"needs {source} and {vocab} (the project's shared data folder)")

    with tempfile.TemporaryDirectory() as data_dir:
        tf.io.gfile.copy(vocab, f"{data_dir}/vocab.txt")
        tf.io.gfile.makedirs(f"{data_dir}/finetuning_data/question_pair")
        for split in ("train", "dev"):
            tf.io.gfile.copy(
                f"{source}/{split}.tsv", f"{data_dir}/finetuning_data/question_pair/{split}.tsv"
            )
        config = FinetuningConfig(
            "bench",
            data_dir,
            task_names=["question_pair"],
            model_size=args.model_size,
            vocab_size=32200,
            do_lower_case=False,
            init_checkpoint=None,
            strategy="cpu",
            max_seq_length=args.max_seq_length,
            train_batch_size=args.batch_size,
            eval_batch_size=args.batch_size,
            double_unordered=False,
            iterations_per_loop=args.steps,
            save_checkpoints_steps=args.steps,
            keep_checkpoint_max=1,
        )
        runner = FinetuningRunner(config)
        task = runner.tasks[0]
        train = runner.split(task, "train", is_training=True)
        steps = 2 * args.steps
        config.num_train_epochs = steps * args.batch_size / len(train.arrays["input_ids"])
        model, optimizer = runner.build(task, 1, steps)
        train_loop = runner.train_loop(task, 1, model, optimizer, train.arrays, steps)

        start = time.perf_counter()
        train_loop.train(stop_at=args.steps)
        first_seconds = time.perf_counter() - start
        start = time.perf_counter()
        train_loop.train()
        train_seconds = time.perf_counter() - start

        predict = runner.predictor(model, task.kind)
        dev = runner.split(task, "dev")
        first_batch = {k: v[: args.batch_size] for k, v in dev.arrays.items()}
        predict(first_batch, args.batch_size)
        start = time.perf_counter()
        predict(dev.arrays, args.batch_size)
        predict_seconds = time.perf_counter() - start
        n_dev = len(dev.arrays["input_ids"])

    encoder = runner.encoder_config
    figures = {
        "model": (
            f"{args.model_size}: {encoder.num_hidden_layers} layers, hidden "
            f"{encoder.hidden_size}, embeddings {encoder.embedding_size}"
        ),
        "max_seq_length": args.max_seq_length,
        "batch_size": args.batch_size,
        "cpu_threads": os.cpu_count(),
        "first_steps_seconds_with_tracing": round(first_seconds, 2),
        "train_steps_per_second": round(args.steps / train_seconds, 3),
        "train_examples_per_second": round(args.steps * args.batch_size / train_seconds, 2),
        "train_tokens_per_second": round(
            args.steps * args.batch_size * args.max_seq_length / train_seconds
        ),
        "predict_examples_per_second": round(n_dev / predict_seconds, 2),
        "predict_batches": math.ceil(n_dev / args.batch_size),
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    bench_report.write_json(args.json, figures)


if __name__ == "__main__":
    main()
