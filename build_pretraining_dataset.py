"""Writes out pre-training examples: raw text files -> sharded TFRecords + dataset_info.json.

Same flags as the reference (the dashed spellings `--corpus-dir`, `--no-lower-case`, ... work too):
  python build_pretraining_dataset.py --corpus_dir=CORPUS --vocab_file=vocab.txt \
      --output_dir=DATA/pretrain_tfrecords --max_seq_length=128 --num_processes=2
"""

from absl import flags

from electra_tf import flags_util
from electra_tf.data import pretraining_data

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus_dir", None, "Directory of raw text files (any tf.io.gfile path).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt or SentencePiece .model.")
flags.DEFINE_string("output_dir", None, "Where to write the TFRecord shards.")
flags.DEFINE_integer("max_seq_length", 128, "Number of tokens per example.")
flags.DEFINE_integer("num_processes", 1, "Parallel worker processes.")
flags.DEFINE_boolean("blanks_separate_docs", True, "Whether blank lines separate documents.")
flags.DEFINE_boolean("do_lower_case", True, "Lower-case the text.")
flags.DEFINE_boolean(
    "do_strip_accents", None, "Strip accents (NFD, drop marks). Default: same as --do_lower_case."
)
flags.DEFINE_integer("num_out_files", 1000, "Number of output shards.")
flags.DEFINE_integer(
    "seed", 0, "Random seed; the output is byte-identical for the same seed and --num_processes."
)
flags.DEFINE_enum(
    "word_segmenter",
    "none",
    ["none", "jieba"],
    "Write an `is_word_start` feature for whole-word masking from this segmenter "
    "(jieba for Chinese). Not needed where '##' WordPiece pieces mark words.",
)
flags.DEFINE_boolean("overwrite", False, "Replace pre-training data already in --output_dir.")

NEGATIONS = {
    "no_lower_case": ("do_lower_case", False),
    "do_lower_case": ("do_lower_case", True),
    "no_strip_accents": ("do_strip_accents", False),
    "do_strip_accents": ("do_strip_accents", True),
}


def main(argv):
    del argv
    for name in ("corpus_dir", "vocab_file", "output_dir"):
        if not FLAGS[name].value:
            raise flags.IllegalFlagValueError(f"--{name} is required")
    pretraining_data.build_dataset(
        pretraining_data.BuildOptions(
            corpus_dir=FLAGS.corpus_dir,
            vocab_file=FLAGS.vocab_file,
            output_dir=FLAGS.output_dir,
            max_seq_length=FLAGS.max_seq_length,
            num_processes=FLAGS.num_processes,
            blanks_separate_docs=FLAGS.blanks_separate_docs,
            do_lower_case=FLAGS.do_lower_case,
            strip_accents=FLAGS.do_strip_accents,
            num_out_files=FLAGS.num_out_files,
            seed=FLAGS.seed,
            word_segmenter=FLAGS.word_segmenter,
            overwrite=FLAGS.overwrite,
        )
    )


def run():
    flags_util.run_main(main, NEGATIONS)


if __name__ == "__main__":
    run()
