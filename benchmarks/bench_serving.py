"""Serving throughput and latency: the exported SavedModel (tokenizer in the graph) from raw strings.

  python benchmarks/bench_serving.py [--shared ../shared] [--model_size small]
      [--max_seq_length 128] [--batch_size 32] [--batches 6] [--latency_calls 40] [--json out.json]

An ELECTRA-Small sentence-pair classifier (random weights; speed does not depend on them) over
the Korean cased vocabulary is exported with `conversion.saved_model.export_saved_model` and
loaded back with `tf.saved_model.load`, as a server would. On the question-pair dev texts, in
one process, interleaved:
- "serving": the "serving_default" signature on raw strings (tokenize, assemble, pad, encoder,
  head): examples/s at `--batch_size`, and latency p50/p99 at batch 1;
- "tokenize only": the SavedModel's own `featurize` on the same strings;
- "model only": the same model's forward pass on already-featurized arrays (a traced Keras
  forward, cut to the batch's longest row as the SavedModel does), i.e. prediction without
  tokenization.
"""

import os
import sys
import tempfile
import time

import bench_report
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SavedModel tokenizer's ops)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from electra_tf import tokenization  # pylint: disable=wrong-import-position
from electra_tf.conversion import saved_model  # pylint: disable=wrong-import-position
from electra_tf.finetuning import features, tasks  # pylint: disable=wrong-import-position
from electra_tf.finetuning.model import build_finetuning_model  # pylint: disable=wrong-import-position
from electra_tf.modeling import EncoderConfig, sizes  # pylint: disable=wrong-import-position

INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")


def _percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def main():
    parser = bench_report.shared_data_parser(__doc__)
    parser.add_argument("--model_size", default="small")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per contender")
    parser.add_argument("--latency_calls", type=int, default=40)
    args = parser.parse_args()
    vocab = os.path.join(args.shared, "vocab", "ko_cased_vocab.txt")
    task = tasks.get_task(
        "question_pair", raw_dir=os.path.join(args.shared, "finetune", "question_pair")
    )
    examples = task.get_examples("dev")
    need = args.batch_size * args.batches
    examples = (examples * (need // len(examples) + 1))[:need]
    text_a = [ex.text_a for ex in examples]
    text_b = [ex.text_b or "" for ex in examples]

    encoder_config = EncoderConfig.from_dict(
        sizes.resolve_encoder_hparams(args.model_size, vocab_size=32200)
    )
    model = build_finetuning_model(encoder_config, task)
    model.build_all(args.max_seq_length)
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=False)
    arrays = features.sentence_features(examples, tokenizer, args.max_seq_length)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = saved_model.export_saved_model(
            model,
            f"{tmp}/export",
            vocab,
            args.max_seq_length,
            do_lower_case=False,
            label_list=task.label_list,
            text_pairs=True,
        )
        loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures["serving_default"]

        @tf.function
        def forward(inputs):  # cut to the longest row, as the SavedModel does
            width = tf.reduce_max(tf.reduce_sum(inputs["input_mask"], -1))
            inputs = {k: v[:, :width] for k, v in inputs.items()}
            encoded = model.encoder(inputs, training=False)
            return tf.nn.softmax(model.head(encoded["pooled_output"], training=False))

        def batches(size):
            for start in range(0, need, size):
                end = start + size
                yield (
                    tf.constant(text_a[start:end]),
                    tf.constant(text_b[start:end]),
                    {k: tf.constant(arrays[k][start:end]) for k in INPUT_KEYS},
                )

        contenders = {
            "serving": lambda a, b, x: serve(text_a=a, text_b=b)["probabilities"].numpy(),
            "tokenize_only": lambda a, b, x: loaded.featurize(a, b)["input_ids"].numpy(),
            "model_only": lambda a, b, x: forward(x).numpy(),
        }
        for fn in contenders.values():  # trace and warm up both shapes
            for size in (args.batch_size, 1):
                a, b, x = next(batches(size))
                fn(a, b, x)
        served = serve(text_a=tf.constant(text_a[:8]), text_b=tf.constant(text_b[:8]))
        direct = forward({k: tf.constant(arrays[k][:8]) for k in INPUT_KEYS})
        max_diff = float(np.max(np.abs(served["probabilities"].numpy() - direct.numpy())))

        results = {"load_before": os.getloadavg()[0], "serving_vs_model_max_prob_diff": max_diff}
        throughput = {name: 0.0 for name in contenders}
        for a, b, x in batches(args.batch_size):  # examples/s, the contenders interleaved
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(a, b, x)
                throughput[name] += time.perf_counter() - start
        latency = {name: [] for name in contenders}
        for i, (a, b, x) in enumerate(batches(1)):
            if i >= args.latency_calls:
                break
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(a, b, x)
                latency[name].append(time.perf_counter() - start)
        for name in contenders:
            results[name] = {
                f"examples_per_second_batch_{args.batch_size}": round(need / throughput[name], 2),
                "latency_ms_p50_batch_1": round(_percentile(latency[name], 50), 1),
                "latency_ms_p99_batch_1": round(_percentile(latency[name], 99), 1),
            }
        results["load_after"] = os.getloadavg()[0]
    key = f"examples_per_second_batch_{args.batch_size}"
    print(f"{'contender':14s} {key:>30s} {'p50 ms (b=1)':>13s} {'p99 ms (b=1)':>13s}")
    for name in contenders:
        r = results[name]
        print(
            f"{name:14s} {r[key]:30.2f} {r['latency_ms_p50_batch_1']:13.1f} "
            f"{r['latency_ms_p99_batch_1']:13.1f}"
        )
    print(
        f"serving / model-only examples/s: {results['serving'][key] / results['model_only'][key]:.2f}"
        f"; max |probability difference| {max_diff:.1e}; load {results['load_before']:.1f} / "
        f"{results['load_after']:.1f}"
    )
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
