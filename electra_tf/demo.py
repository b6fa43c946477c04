"""The embedded default: the whole pipeline on the bundled corpus, a tiny model, CPU, minutes.

  electra-demo [--output_dir=demo_output] [--num_train_steps=300]

Learns a WordPiece vocabulary from the bundled public-domain corpus, builds TFRecords, pre-trains
the `demo` model size with the ELECTRA objective, evaluates and prints the reference's metrics
next to their chance levels. Re-running continues: finished steps are skipped.
"""

import importlib.resources

import tensorflow as tf
from absl import flags, logging

from electra_tf import flags_util
from electra_tf import vocab as vocab_lib
from electra_tf.data import pretraining_data
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import Pretrainer

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "demo_output", "Where the vocabulary, data and model go.")
flags.DEFINE_integer("num_train_steps", 300, "Pre-training steps.")
flags.DEFINE_integer("demo_vocab_size", 4000, "Size of the WordPiece vocabulary to learn.")

MAX_SEQ_LENGTH = 128


def corpus_dir():
    return str(importlib.resources.files("electra_tf") / "resources" / "demo_corpus")


def run_demo(output_dir, num_train_steps=300, vocab_size=4000):
    """Runs every stage; returns the evaluation results."""
    output_dir = output_dir.rstrip("/")
    vocab_file = f"{output_dir}/vocab.txt"
    if not tf.io.gfile.exists(vocab_file):
        logging.info("[1/4] Learning a %d-token WordPiece vocabulary", vocab_size)
        vocab_lib.learn_wordpiece_vocab(corpus_dir(), vocab_file, vocab_size=vocab_size)
    data_dir = f"{output_dir}/pretrain_tfrecords"
    if pretraining_data.read_dataset_info(data_dir) is None:
        logging.info("[2/4] Building pre-training examples")
        pretraining_data.build_dataset(
            pretraining_data.BuildOptions(
                corpus_dir=corpus_dir(),
                vocab_file=vocab_file,
                output_dir=data_dir,
                max_seq_length=MAX_SEQ_LENGTH,
                num_out_files=8,
                overwrite=True,
            )
        )
    size = len(tf.io.gfile.GFile(vocab_file).read().splitlines())
    config = PretrainingConfig(
        "demo",
        output_dir,
        model_size="demo",
        vocab_size=size,
        max_seq_length=MAX_SEQ_LENGTH,
        num_train_steps=num_train_steps,
        do_eval=True,
    )
    logging.info("[3/4] Pre-training ELECTRA (model size 'demo') for %d steps", num_train_steps)
    pretrainer = Pretrainer(config)
    pretrainer.train()
    logging.info("[4/4] Evaluating")
    results = pretrainer.evaluate()
    pretrainer.write_results(results)
    return results, size


def main(argv):
    del argv
    results, size = run_demo(FLAGS.output_dir, FLAGS.num_train_steps, FLAGS.demo_vocab_size)
    chance = {"masked_lm_accuracy": 1.0 / size, "disc_auc": 0.5}
    print("\nELECTRA demo finished. Evaluation on held data:")
    for key, value in results.items():
        note = f"   (chance: {chance[key]:.4f})" if key in chance else ""
        print(
            f"  {key:28s} {value:.4f}{note}" if isinstance(value, float) else f"  {key:28s} {value}"
        )
    print(
        f"\nResults: {FLAGS.output_dir}/models/demo/results/unsup_results.txt; "
        f"TensorBoard: tensorboard --logdir {FLAGS.output_dir}/models/demo"
    )


def run():
    flags_util.run_main(main)


if __name__ == "__main__":
    run()
