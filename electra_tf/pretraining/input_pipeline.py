"""tf.data input for pre-training: sharded TFRecords -> fixed-shape per-replica batches.

As the reference: shuffled file order, interleaved shards, a shuffle buffer, repeat, and batches
with `drop_remainder=True` (static shapes for XLA/TPU). Unlike the reference the interleave is
deterministic, so that the iterator's position saved in a checkpoint resumes the exact stream.

Beyond the reference: data without `dataset_info.json` (an incomplete build) is refused unless the
caller allows it, and a corrupt shard (a truncated record, a bad CRC) is an error that names the
file, or, when asked, skipped with a warning that counts what was lost.
"""

import concurrent.futures
import json
import sys

import tensorflow as tf
from absl import logging

from electra_tf.data import pretraining_data

ON_CORRUPT_SHARD = ("error", "skip")
_RECORD_FRAMING_BYTES = 16  # length (8), its CRC (4), the data's CRC (4)
_CHECK_BLOCK_RECORDS = 1024


class DataMismatchError(ValueError):
    """The pre-training data was built for another vocabulary, casing or sequence length."""


def list_input_files(pattern):
    files = []
    for p in pattern.split(","):
        files.extend(tf.io.gfile.glob(p.strip()))
    files = sorted(f for f in files if ".tmp-" not in f)
    if not files:
        raise FileNotFoundError(
            f"No pre-training data matches {pattern}. Build it with build_pretraining_dataset.py "
            "(--output_dir=<data_dir>/pretrain_tfrecords) or set the pretrain_tfrecords hparam."
        )
    return files


def check_dataset_info(
    pattern,
    vocab_file,
    max_seq_length,
    vocab_sha256=None,
    allow_missing_info=False,
    do_lower_case=None,
):
    """Refuses data built with another vocabulary, casing or max_seq_length, or without
    dataset_info.json.

    The builder writes `dataset_info.json` last, so data without it is an incomplete build (killed
    or failed) or was not made by `build_pretraining_dataset.py` (e.g. by the reference code).

    Args:
      pattern: the shard pattern(s), comma-separated; the first one's folder holds the info.
      vocab_file, max_seq_length: what the model uses (vocab_file None: not checked).
      vocab_sha256: the vocabulary's digest when the caller has it.
      do_lower_case: the model's casing (None: not checked); the model dir records it and
        fine-tuning tokenizes with it, so it must be the data's.
      allow_missing_info: accept data without dataset_info.json, unchecked, with a warning.

    Returns:
      the dataset info dict, or None for data without one when `allow_missing_info`.
    """
    info = pretraining_data.read_dataset_info(pattern.split(",")[0])
    if info is None:
        directory = pattern.split(",")[0].strip()
        if "*" in directory or pretraining_data.SHARD_PREFIX in directory:
            directory = directory.rsplit("/", 1)[0]
        info_path = pretraining_data.join_path(directory, pretraining_data.DATASET_INFO)
        if not allow_missing_info:
            raise DataMismatchError(
                f"{info_path} not found: the pre-training data at {pattern} is an incomplete build "
                "(a killed or failed build_pretraining_dataset.py publishes no dataset_info.json) "
                "or was made by another tool, so its vocabulary and max_seq_length cannot be "
                "checked. Rebuild it with build_pretraining_dataset.py (--overwrite), or set the "
                "hparam allow_missing_dataset_info=true to use it unchecked."
            )
        logging.warning(
            "Using the pre-training data at %s without dataset_info.json "
            "(allow_missing_dataset_info): its vocabulary and max_seq_length are not checked.",
            pattern,
        )
        return None
    if info["max_seq_length"] != max_seq_length:
        raise DataMismatchError(
            f"The data at {pattern} was built with max_seq_length={info['max_seq_length']} but the "
            f"config says max_seq_length={max_seq_length}. Rebuild the data or pass "
            f"--hparams '{{\"max_seq_length\": {info['max_seq_length']}}}'."
        )
    if do_lower_case is not None and info.get("do_lower_case", do_lower_case) != do_lower_case:
        raise DataMismatchError(
            f"The data at {pattern} was built with do_lower_case={info['do_lower_case']} but the "
            f"config says do_lower_case={do_lower_case}; fine-tuning would tokenize differently. "
            f"Pass --hparams '{{\"do_lower_case\": {json.dumps(info['do_lower_case'])}}}' or "
            "rebuild the data."
        )
    if vocab_file and tf.io.gfile.exists(vocab_file):
        digest = vocab_sha256 or pretraining_data.file_sha256(vocab_file)
        if digest != info["vocab_sha256"]:
            raise DataMismatchError(
                f"The data at {pattern} was built with the vocabulary {info['vocab_file']} "
                f"(sha256 {info['vocab_sha256'][:12]}...), which differs from {vocab_file} "
                f"(sha256 {digest[:12]}...). Use the same vocab.txt for data and model."
            )
    return info


def feature_spec(max_seq_length, with_word_starts=False):
    names = ["input_ids", "input_mask", "segment_ids"]
    if with_word_starts:
        names.append(pretraining_data.WORD_START_FEATURE)
    return {n: tf.io.FixedLenFeature([max_seq_length], tf.int64) for n in names}


def _file_sizes(files):
    with concurrent.futures.ThreadPoolExecutor(min(16, max(1, len(files)))) as pool:
        return list(pool.map(lambda f: tf.io.gfile.stat(f).length, files))


def checked_records(path, size, on_corrupt_shard="error"):
    """The records of one TFRecord file, checked to cover the whole file (`size` bytes).

    A truncated record or a bad CRC ends TensorFlow's reading of the file with a DataLossError
    that names no file; here the unreadable rest is noticed at the end of the file (the records
    read plus their framing fall short of its size) and, with "error", fails with a message that
    names the file; with "skip", a warning names the file and the bytes skipped, and the records
    before the damage are kept.
    """
    # Bookkeeping per block of records, not per record (a per-record scan cost 10x the reading).
    blocks = tf.data.TFRecordDataset(path).ignore_errors().batch(_CHECK_BLOCK_RECORDS)
    blocks = blocks.map(lambda block: (block, False))
    end = tf.data.Dataset.from_tensors((tf.zeros([0], tf.string), tf.constant(True)))

    def count(consumed, element):
        block, is_end = element
        lengths = tf.cast(tf.strings.length(block), tf.int64) + _RECORD_FRAMING_BYTES
        consumed += tf.reduce_sum(lengths)
        return consumed, (block, is_end, consumed)

    def check(block, is_end, consumed):
        damaged = tf.logical_and(is_end, tf.not_equal(consumed, size))
        if on_corrupt_shard == "error":
            message = tf.strings.join(
                [
                    "The pre-training shard ",
                    path,
                    " is corrupt (a truncated record or a bad CRC): only ",
                    tf.strings.as_string(consumed),
                    " of its ",
                    tf.strings.as_string(size),
                    " bytes read. Rebuild the data with build_pretraining_dataset.py, or skip "
                    "damaged shards with on_corrupt_shard='skip'.",
                ]
            )
            checked = tf.debugging.Assert(tf.logical_not(damaged), [message], summarize=1)
        else:

            def warn():
                return tf.print(
                    "WARNING: the pre-training shard",
                    path,
                    "is corrupt (a truncated record or a bad CRC): skipped",
                    size - consumed,
                    "of its",
                    size,
                    "bytes after the last good record.",
                    output_stream=sys.stderr,
                )

            checked = tf.cond(damaged, warn, tf.no_op)
        with tf.control_dependencies([checked]):
            return tf.identity(block)

    d = blocks.concatenate(end).scan(tf.constant(0, tf.int64), count)
    return d.map(check).unbatch()  # the end's empty block adds no record


def make_dataset(
    files,
    batch_size,
    max_seq_length,
    seed,
    is_training=True,
    with_word_starts=False,
    input_context=None,
    shuffle_buffer=1000,
    on_corrupt_shard="error",
):
    """Per-replica dataset of int32 feature dicts; shards files across input pipelines.

    `on_corrupt_shard`: "error" (a corrupt shard fails, naming the file) or "skip" (its unreadable
    rest is skipped with a warning naming the file and the bytes lost); see `checked_records`.
    """
    if on_corrupt_shard not in ON_CORRUPT_SHARD:
        raise ValueError(
            f"on_corrupt_shard must be one of {', '.join(ON_CORRUPT_SHARD)}, "
            f"not {on_corrupt_shard!r}"
        )
    d = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files), tf.constant(_file_sizes(files), tf.int64))
    )
    if input_context and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.repeat()
        d = d.shuffle(len(files), seed=seed)
    d = d.interleave(
        lambda path, size: checked_records(path, size, on_corrupt_shard),
        cycle_length=min(4, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if (
        input_context
        and input_context.num_input_pipelines > 1
        and len(files) < input_context.num_input_pipelines
    ):
        d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.shuffle(shuffle_buffer, seed=seed)
    spec = feature_spec(max_seq_length, with_word_starts)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        return {k: tf.cast(v, tf.int32) for k, v in parsed.items()}

    d = d.batch(batch_size, drop_remainder=True)
    d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return d.prefetch(tf.data.AUTOTUNE)
