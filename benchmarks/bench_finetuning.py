"""Fine-tuning throughput: training against prediction examples/s, per task kind, in one run.

  python benchmarks/bench_finetuning.py [--shared ../shared] [--model_size small]
      [--max_seq_length 128] [--doc_stride 64] [--batch_size 32] [--steps 4] [--eval_examples 320]
      [--qa_eval_examples 40]
      [--tasks question_pair,naver_ner,korquad] [--json out.json]

Runs run_finetuning's own pieces (FinetuningRunner: featurization, model, AdamW with layer-wise
decay, the shared TrainLoop, the predictor, evaluation with the task's metrics) on the real Korean
data in ../shared, from random weights (throughput does not depend on them), for a classification
(question_pair), a tagging (naver_ner) and a span-QA task (korquad: long contexts cut into
windows with `--doc_stride`, n-best decoding). Per task, in one process:
- train: `--steps` steps including tracing, then `--steps` timed steps that include one checkpoint
  write, as every real run ends with one (examples = features, full-length rows); then
  `--steps` more steps alone (the traced loop, no checkpoint), as bench_pretraining times them;
- evaluate: `runner.evaluate` on `--eval_examples` examples of the eval split (prediction, QA
  decoding, metrics) after a first, tracing call; its examples/s counts features (QA windows) as
  training does; for QA the Python decoding (`qa.postprocess_qa`) is also timed alone;
- the former predictor (every row at full length through the strategy's distributed dataset,
  still the several-replica path), timed on the same rows between two calls of the current one;
- memory: the process's peak resident set after training and at the end; run one task per process
  (`--tasks NAME`) for each task's own peak.
"""

import json
import os
import resource
import sys
import tempfile
import time

import bench_report
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from electra_tf.finetuning import model as model_lib  # pylint: disable=wrong-import-position
from electra_tf.finetuning import runner as runner_lib  # pylint: disable=wrong-import-position
from electra_tf.finetuning.config import FinetuningConfig  # pylint: disable=wrong-import-position


def _lines(path, start, n):
    with open(path, encoding="utf-8") as f:
        return f.readlines()[start : start + n]


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_task(shared, name, out, n_eval):
    """The task's train split and an eval split of about n_eval examples under out/<name>/."""
    src = os.path.join(shared, "finetune", name)
    if name == "question_pair":
        _write(f"{out}/{name}/train.tsv", "".join(_lines(f"{src}/train.tsv", 0, 10**9)))
        _write(f"{out}/{name}/dev.tsv", "".join(_lines(f"{src}/dev.tsv", 0, n_eval + 1)))
    elif name == "naver_ner":  # only test.tsv is shared: its head trains, the next lines evaluate
        _write(f"{out}/{name}/train.tsv", "".join(_lines(f"{src}/test.tsv", 0, 2000)))
        _write(f"{out}/{name}/test.tsv", "".join(_lines(f"{src}/test.tsv", 2000, n_eval)))
    elif name == "korquad":  # only dev is shared: its last paragraphs train, the first evaluate
        with open(f"{src}/KorQuAD_v1.0_dev.json", encoding="utf-8") as f:
            paragraphs = [p for a in json.load(f)["data"] for p in a["paragraphs"]]
        take, count = [], 0
        for p in paragraphs:
            if count >= n_eval:
                break
            take.append(p)
            count += len(p["qas"])
        for split, chosen in (("dev", take), ("train", paragraphs[-200:])):
            data = {"version": "bench", "data": [{"title": "t", "paragraphs": chosen}]}
            _write(f"{out}/{name}/KorQuAD_v1.0_{split}.json", json.dumps(data, ensure_ascii=False))
    else:
        raise ValueError(f"no benchmark data for {name}")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


# Flags named as the `FinetuningConfig` keys they set.
_SIZE_FLAGS = ("model_size", "max_seq_length", "doc_stride", "max_query_length")
_BATCH_SIZES = ("train_batch_size", "eval_batch_size", "predict_batch_size")


def _peak_rss_mb():
    """This process's peak resident memory so far, in MB (the kernel's accounting)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def bench_task(args, name, data_dir):
    config = FinetuningConfig(
        "bench",
        data_dir,
        task_names=[name],
        vocab_size=32200,
        do_lower_case=False,
        init_checkpoint=None,
        strategy="cpu",
        double_unordered=False,
        **{key: getattr(args, key) for key in _SIZE_FLAGS},
        **dict.fromkeys(_BATCH_SIZES, args.batch_size),  # --batch_size for every batch
        # One host loop and one checkpoint per timed stretch.
        **dict.fromkeys(("iterations_per_loop", "save_checkpoints_steps"), args.steps),
        keep_checkpoint_max=1,
    )
    runner = runner_lib.FinetuningRunner(config)
    task = runner.tasks[0]
    train = runner.split(task, "train", is_training=True)
    steps = 2 * args.steps
    config.num_train_epochs = steps * args.batch_size / len(train.arrays["input_ids"])
    model, optimizer = runner.build([task], 1, steps)
    train_loop = runner.train_loop([task], 1, model, optimizer, train.arrays, steps)
    _, first_seconds = _timed(lambda: train_loop.train(stop_at=args.steps))
    _, train_seconds = _timed(train_loop.train)
    train_rate = args.steps * args.batch_size / train_seconds
    peak_after_training = _peak_rss_mb()

    def steps_alone():  # no checkpoint write, no tracing: as bench_pretraining times a step
        means, _ = train_loop._loop_fn(tf.constant(args.steps))  # pylint: disable=protected-access
        return {k: float(v) for k, v in means.items()}

    _, steps_seconds = _timed(steps_alone)
    steps_rate = args.steps * args.batch_size / steps_seconds

    data = runner.split(task, task.eval_split)
    n_eval = len(data.arrays["input_ids"])
    predict = runner.predictor(model, task.kind)
    runner.evaluate(task, predict)  # traces every width the split needs
    _, eval_seconds = _timed(lambda: runner.evaluate(task, predict))
    keys = runner_lib._INPUT_KEYS + model_lib.label_keys(task.kind)  # pylint: disable=protected-access

    def replica_fn(batch):
        losses, outputs = model.compute(batch, training=False)
        return dict(outputs, losses=losses)

    former = runner._distributed_predictor(replica_fn, keys)  # pylint: disable=protected-access
    former(data.arrays, args.batch_size)
    times = {"current": [], "former": []}
    for which in ("current", "former", "current"):
        fn = predict if which == "current" else former
        outputs, seconds = _timed(lambda fn=fn: fn(data.arrays, args.batch_size))
        times[which].append(seconds)
    figures = {
        "examples_eval": len(data.examples),
        "features_eval": n_eval,
        "mean_real_tokens_eval": round(float(np.mean(data.arrays["input_mask"].sum(1))), 1),
        "first_steps_seconds_with_tracing": round(first_seconds, 2),
        "train_examples_per_second": round(train_rate, 2),
        "evaluate_examples_per_second": round(n_eval / eval_seconds, 2),
        "evaluate_vs_train": round(n_eval / eval_seconds / train_rate, 2),
        "train_steps_alone_examples_per_second": round(steps_rate, 2),
        "evaluate_vs_train_steps_alone": round(n_eval / eval_seconds / steps_rate, 2),
        "predict_examples_per_second": round(n_eval / min(times["current"]), 2),
        "former_predict_examples_per_second": round(n_eval / times["former"][0], 2),
        "predict_vs_former": round(times["former"][0] / min(times["current"]), 2),
        # The process's peak so far: one task per process (--tasks NAME) gives that task's own.
        "peak_rss_mb_after_training": peak_after_training,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if task.kind == "span_qa":
        _, decode_seconds = _timed(lambda: runner._decode_qa(task, data, outputs))  # pylint: disable=protected-access
        figures["qa_decode_examples_per_second"] = round(len(data.examples) / decode_seconds, 1)
        figures["qa_decode_share_of_evaluate"] = round(decode_seconds / eval_seconds, 3)
    return figures


def main():
    parser = bench_report.shared_data_parser(__doc__)
    parser.add_argument("--model_size", default="small")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--doc_stride", type=int, default=64)
    parser.add_argument("--max_query_length", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="warm-up steps, then timed steps")
    parser.add_argument("--eval_examples", type=int, default=320)
    parser.add_argument("--qa_eval_examples", type=int, default=40, help="questions (many windows)")
    parser.add_argument("--tasks", default="question_pair,naver_ner,korquad")
    args = parser.parse_args()
    vocab = os.path.join(args.shared, "vocab", "ko_cased_vocab.txt")
    if not os.path.exists(vocab):
        sys.exit(f"needs {vocab} (the project's shared data folder)")
    results = {"load_before": os.getloadavg()[0]}
    for name in args.tasks.split(","):
        with tempfile.TemporaryDirectory() as data_dir:
            tf.io.gfile.copy(vocab, f"{data_dir}/vocab.txt")
            n_eval = args.qa_eval_examples if name == "korquad" else args.eval_examples
            write_task(args.shared, name, f"{data_dir}/finetuning_data", n_eval)
            results[name] = bench_task(args, name, data_dir)
        print(name, json.dumps(results[name]), flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(
        f"{'task':14s} {'train ex/s':>10s} {'steps alone':>11s} {'eval ex/s':>9s} "
        f"{'eval/train':>10s} {'eval/steps':>10s} {'predict':>8s} {'former':>7s} {'speed-up':>8s} "
        f"{'peak MB':>8s}"
    )
    for name in args.tasks.split(","):
        r = results[name]
        print(
            f"{name:14s} {r['train_examples_per_second']:10.2f} "
            f"{r['train_steps_alone_examples_per_second']:11.2f} "
            f"{r['evaluate_examples_per_second']:9.2f} {r['evaluate_vs_train']:9.2f}x "
            f"{r['evaluate_vs_train_steps_alone']:9.2f}x "
            f"{r['predict_examples_per_second']:8.2f} {r['former_predict_examples_per_second']:7.2f} "
            f"{r['predict_vs_former']:7.2f}x {r['peak_rss_mb']:8d}"
        )
    print(f"load average (1 min) before/after: {results['load_before']} / {results['load_after']}")
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
