"""tf.data input for pre-training: sharded TFRecords -> fixed-shape per-replica batches.

As the reference: shuffled file order, interleaved shards, a shuffle buffer, repeat, and batches
with `drop_remainder=True` (static shapes for XLA/TPU). Unlike the reference the interleave is
deterministic, so that the iterator's position saved in a checkpoint resumes the exact stream.
"""

import tensorflow as tf

from electra_tf.data import pretraining_data


class DataMismatchError(ValueError):
    """The pre-training data was built for another vocabulary or sequence length."""


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


def check_dataset_info(pattern, vocab_file, max_seq_length, vocab_sha256=None):
    """Refuses data built with another vocabulary or max_seq_length (needs dataset_info.json).

    Returns the dataset info dict, or None for data without one (built by the reference).
    """
    info = pretraining_data.read_dataset_info(pattern.split(",")[0])
    if info is None:
        return None
    if info["max_seq_length"] != max_seq_length:
        raise DataMismatchError(
            f"The data at {pattern} was built with max_seq_length={info['max_seq_length']} but the "
            f"config says max_seq_length={max_seq_length}. Rebuild the data or pass "
            f"--hparams '{{\"max_seq_length\": {info['max_seq_length']}}}'."
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


def make_dataset(
    files,
    batch_size,
    max_seq_length,
    seed,
    is_training=True,
    with_word_starts=False,
    input_context=None,
    shuffle_buffer=1000,
):
    """Per-replica dataset of int32 feature dicts; shards files across input pipelines."""
    d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
    if input_context and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.repeat()
        d = d.shuffle(len(files), seed=seed)
    d = d.interleave(
        tf.data.TFRecordDataset,
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
