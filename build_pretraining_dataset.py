"""Writes out pre-training examples: raw text files -> sharded TFRecords + dataset_info.json.

Same flags as the reference (the dashed spellings `--corpus-dir`, `--no-lower-case`, ... work too):
  python build_pretraining_dataset.py --corpus_dir=CORPUS --vocab_file=vocab.txt \
      --output_dir=DATA/pretrain_tfrecords --max_seq_length=128 --num_processes=2
"""

from absl import flags

from electra_tf import cli
from electra_tf.data import pretraining_data


def define_flags(fv):
    def string(name, default, help_text):
        flags.DEFINE_string(name, default, help_text, flag_values=fv)

    string("corpus_dir", None, "Directory of raw text files (any tf.io.gfile path).")
    string("vocab_file", None, "WordPiece vocab.txt or SentencePiece .model.")
    string("output_dir", None, "Where to write the TFRecord shards.")
    flags.DEFINE_integer("max_seq_length", 128, "Number of tokens per example.", flag_values=fv)
    flags.DEFINE_integer("num_processes", 1, "Parallel worker processes.", flag_values=fv)
    flags.DEFINE_boolean(
        "blanks_separate_docs", True, "Whether blank lines separate documents.", flag_values=fv
    )
    flags.DEFINE_boolean("do_lower_case", True, "Lower-case the text.", flag_values=fv)
    flags.DEFINE_boolean(
        "do_strip_accents",
        None,
        "Strip accents (NFD, drop marks). Default: same as --do_lower_case.",
        flag_values=fv,
    )
    flags.DEFINE_integer("num_out_files", 1000, "Number of output shards.", flag_values=fv)
    flags.DEFINE_integer(
        "seed",
        0,
        "Random seed; the output is byte-identical for the same seed and --num_processes.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "word_segmenter",
        "none",
        ["none", "jieba"],
        "Write an `is_word_start` feature for whole-word masking from this segmenter (jieba for "
        "Chinese). Not needed where '##' WordPiece pieces mark words.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "overwrite", False, "Replace pre-training data already in --output_dir.", flag_values=fv
    )


def main(fv):
    pretraining_data.build_dataset(
        pretraining_data.BuildOptions(
            corpus_dir=fv.corpus_dir,
            vocab_file=fv.vocab_file,
            output_dir=fv.output_dir,
            max_seq_length=fv.max_seq_length,
            num_processes=fv.num_processes,
            blanks_separate_docs=fv.blanks_separate_docs,
            do_lower_case=fv.do_lower_case,
            strip_accents=fv.do_strip_accents,
            num_out_files=fv.num_out_files,
            seed=fv.seed,
            word_segmenter=fv.word_segmenter,
            overwrite=fv.overwrite,
        )
    )


COMMAND = cli.Command(
    usage="--corpus_dir=DIR --vocab_file=vocab.txt --output_dir=DIR [flags]",
    define_flags=define_flags,
    main=main,
    required=("corpus_dir", "vocab_file", "output_dir"),
    negations={
        "no_lower_case": ("do_lower_case", False),
        "do_lower_case": ("do_lower_case", True),
        "no_strip_accents": ("do_strip_accents", False),
        "do_strip_accents": ("do_strip_accents", True),
    },
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
