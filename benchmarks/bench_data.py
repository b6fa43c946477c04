"""Tokenizer and dataset-builder throughput against the reference algorithms, in one run.

  python benchmarks/bench_data.py [--shared ../shared] [--repeat 3] [--json out.json]

Baselines: `FullTokenizer.tokenize` is the reference's pure-Python algorithm (BasicTokenizer +
WordPiece, checked line-for-line against the reference's golden output), and the reference
builder tokenizes line by line with it and builds each example through the protobuf API. The
measured contenders are `encode_batch` and `build_job` (one process, end to end: read, tokenize,
pack, serialize, write shards). Ratios are taken in the same run since this machine is shared.
"""

import argparse
import os
import random
import sys
import tempfile
import time

import bench_report
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from electra_tf import tokenization  # pylint: disable=wrong-import-position
from electra_tf.data import pretraining_data  # pylint: disable=wrong-import-position


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def reference_builder(tokenizer, lines, path, max_length=128):
    """The reference's loop: per-line pure-Python tokenization, protobuf-built Examples."""

    def feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    builder = pretraining_data.ExampleBuilder(
        tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"], max_length, random.Random(0)
    )
    with tf.io.TFRecordWriter(path) as writer:
        for line in lines:
            line = line.strip()
            result = (
                builder.add_line(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)))
                if line
                else builder.add_blank_line()
            )
            if result:
                parsed = tf.train.Example.FromString(result[0]).features.feature
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={k: feature(list(parsed[k].int64_list.value)) for k in parsed}
                    )
                )
                writer.write(example.SerializeToString())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    parser.add_argument("--repeat", type=int, default=3, help="corpus copies for the builder run")
    parser.add_argument(
        "--reference_fraction",
        type=float,
        default=0.25,
        help="share of the corpus the slow reference paths process",
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    corpus = os.path.join(args.shared, "corpora", "en_fortunes.txt")
    vocab = os.path.join(args.shared, "vocab", "en_uncased_vocab.txt")
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().split("\n")
    sample = lines[: int(len(lines) * args.reference_fraction)]
    n_chars, n_sample = sum(map(len, lines)), sum(map(len, sample))
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
    tokenizer.encode_batch(lines[:100])  # build the tables and the tensorflow-text model once

    results = {}
    _, t = _timed(
        lambda: [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in sample]
    )
    results["reference_tokenizer_chars_per_s"] = n_sample / t
    _, t = _timed(lambda: tokenizer.encode_batch(lines))
    results["encode_batch_chars_per_s"] = n_chars / t

    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = os.path.join(tmp, "corpus")
        os.makedirs(corpus_dir)
        for i in range(args.repeat):
            with open(os.path.join(corpus_dir, f"part{i}.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
        _, t = _timed(
            lambda: reference_builder(tokenizer, sample, os.path.join(tmp, "ref.tfrecord"))
        )
        results["reference_builder_chars_per_s"] = n_sample / t
        opts = pretraining_data.BuildOptions(
            corpus_dir=corpus_dir,
            vocab_file=vocab,
            output_dir=os.path.join(tmp, "out"),
            num_out_files=8,
        )
        pretraining_data.prepare_output_dir(opts.output_dir, overwrite=True)
        files = pretraining_data.list_corpus_files(corpus_dir)
        stats, t = _timed(lambda: pretraining_data.build_job(0, opts, files))
        results["builder_chars_per_s"] = stats["chars"] / t
        results["builder_examples_per_s"] = stats["examples"] / t

    results["tokenizer_speedup"] = (
        results["encode_batch_chars_per_s"] / results["reference_tokenizer_chars_per_s"]
    )
    results["builder_speedup"] = (
        results["builder_chars_per_s"] / results["reference_builder_chars_per_s"]
    )
    for key, value in results.items():
        print(f"{key:40s} {value:14,.2f}")
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
