"""Input pipelines measured alone: pre-training tf.data and fine-tuning featurization, examples/s.

  python benchmarks/bench_input.py [--shared ../shared] [--examples 32768] [--batch_size 128]
      [--length 128] [--json out.json]

- pre-training: `pretraining.input_pipeline.make_dataset` exactly as the trainer builds it for
  training (shuffled file order, deterministic interleave of 8 shards, shuffle buffer, batch, then
  `parse_example` on the batch, prefetch) over `--examples` synthetic full-length records; batches
  are pulled as fast as the consumer can take them (masking runs on the device, not here). The
  target is >= 20,000 examples/s at 128 tokens on this machine's 2 cores.
- fine-tuning featurization (`finetuning.features.featurize`: tokenize and build features) on the
  Korean shared data: question_pair (sentence pairs, classification), naver_ner (tagging) and
  KorQuAD (span QA: long contexts cut into windows with doc_stride), examples/s (QA: questions/s;
  features/s is printed too).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import bench_report
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from electra_tf import tokenization  # pylint: disable=wrong-import-position
from electra_tf.data import records  # pylint: disable=wrong-import-position
from electra_tf.finetuning import features, tasks  # pylint: disable=wrong-import-position
from electra_tf.pretraining import input_pipeline  # pylint: disable=wrong-import-position


def write_records(directory, n, length, shards=8):
    rng = np.random.default_rng(0)
    paths = [f"{directory}/pretrain_data.tfrecord-{i}-of-{shards}" for i in range(shards)]
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    for i in range(n):
        ids = [2] + rng.integers(5, 30000, length - 2).tolist() + [3]
        writers[i % shards].write(
            records.encode_int64_example(
                dict(input_ids=ids, input_mask=[1] * length, segment_ids=[0] * length)
            )
        )
    for w in writers:
        w.close()
    return paths


def bench_pretraining_input(args):
    with tempfile.TemporaryDirectory() as tmp:
        files = write_records(tmp, args.examples, args.length)
        dataset = input_pipeline.make_dataset(files, args.batch_size, args.length, seed=0)
        it = iter(dataset)
        next(it)  # start the pipeline (threads, first reads)
        batches = args.examples // args.batch_size
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
        seconds = time.perf_counter() - start
        assert batch["input_ids"].shape == (args.batch_size, args.length)
    return {
        "examples_per_second": round(batches * args.batch_size / seconds),
        "batches": batches,
        "batch_size": args.batch_size,
        "length": args.length,
    }


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_featurization(args):
    shared = args.shared
    out = {}
    ko = tokenization.FullTokenizer(f"{shared}/vocab/ko_cased_vocab.txt", do_lower_case=False)
    ko.encode_batch(["warm up"])
    cases = [
        ("question_pair", f"{shared}/finetune/question_pair", "train", {}),
        ("naver_ner", f"{shared}/finetune/naver_ner", "test", {}),
        ("korquad", f"{shared}/finetune/korquad", "dev", {"doc_stride": 128}),
    ]
    for name, raw_dir, split, kwargs in cases:
        task = tasks.get_task(name, raw_dir=raw_dir)
        examples = task.get_examples(split)[: args.featurize_examples]
        length = 512 if task.kind == "span_qa" else args.length
        feats, seconds = _timed(
            lambda task=task, examples=examples, length=length, kwargs=kwargs: features.featurize(
                task, examples, ko, length, **kwargs
            )
        )
        arrays = feats.arrays if task.kind == "span_qa" else feats
        out[name] = {
            "kind": task.kind,
            "max_seq_length": length,
            "examples": len(examples),
            "features": len(arrays["input_ids"]),
            "examples_per_second": round(len(examples) / seconds),
            "features_per_second": round(len(arrays["input_ids"]) / seconds),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    parser.add_argument("--examples", type=int, default=32768)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--featurize_examples", type=int, default=3000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {"load_before": os.getloadavg()[0]}
    results["pretraining_input"] = bench_pretraining_input(args)
    print("pretraining_input", json.dumps(results["pretraining_input"]), flush=True)
    results["featurization"] = bench_featurization(args)
    for name, r in results["featurization"].items():
        print(name, json.dumps(r), flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min) before/after: {results['load_before']} / {results['load_after']}")
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
