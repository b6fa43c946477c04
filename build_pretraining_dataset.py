"""Writes out pre-training examples: raw text files -> sharded TFRecords + dataset_info.json.

Same flags as the reference (the dashed spellings `--corpus-dir`, `--no-lower-case`, ... work too):
  python build_pretraining_dataset.py --corpus_dir=CORPUS --vocab_file=vocab.txt \
      --output_dir=DATA/pretrain_tfrecords --max_seq_length=128 --num_processes=2
"""

from electra_tf import cli
from electra_tf.data import pretraining_data

FLAGS = (
    cli.CORPUS_DIR,
    ("vocab_file", str, None, "WordPiece vocab.txt or SentencePiece .model."),
    ("output_dir", str, None, "Where to write the TFRecord shards."),
    ("max_seq_length", int, 128, "Number of tokens per example."),
    ("num_processes", int, 1, "Parallel worker processes."),
    ("blanks_separate_docs", bool, True, "Whether blank lines separate documents."),
    cli.DO_LOWER_CASE,
    ("do_strip_accents", bool, None, "Strip accents. Default: same as --do_lower_case."),
    ("num_out_files", int, 1000, "Number of output shards."),
    ("seed", int, 0, "Random seed; same seed and --num_processes, same bytes."),
    ("word_segmenter", ("none", "jieba"), "none", "Write is_word_start for whole-word masking."),
    ("overwrite", bool, False, "Replace pre-training data already in --output_dir."),
)


def main(fv):
    names = [row[0] for row in FLAGS if row[0] != "do_strip_accents"]
    options = dict(cli.values(fv, *names), strip_accents=fv.do_strip_accents)
    pretraining_data.build_dataset(pretraining_data.BuildOptions(**options))


COMMAND = cli.Command(
    usage="--corpus_dir=DIR --vocab_file=vocab.txt --output_dir=DIR [flags]",
    flags=FLAGS,
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
