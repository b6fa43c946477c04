"""electra-convert: moves pre-trained models between the original ELECTRA's TF1 checkpoints,
this project's model directories and Hugging Face folders.

  electra-convert --from reference --to hf --input CKPT --output OUT --vocab_file vocab.txt \\
      --hparams '{"num_attention_heads": 4}'
  electra-convert --from reference --to ours --input CKPT --output DATA/models/NAME
  electra-convert --from ours --to hf --input DATA/models/NAME --output OUT
  electra-convert --from hf --to ours --input HF_FOLDER --output DATA/models/NAME
  electra-convert --from ours --to saved_model --input DATA/models/NAME/finetuning_models/T_model_1 \
      --output EXPORT_DIR
  electra-convert --from ours --to hf --input DATA/models/NAME/finetuning_models/T_model_1 \
      --output OUT

Every conversion reads into a `PretrainingModel` (pre-trained models) or a
`saved_model.FinetunedModel` (run_finetuning.py's classification and regression models) and
writes it out: a new format is one reader in `READERS` or one writer in `WRITERS`. Fine-tuned
models go to a SavedModel that reads raw strings, or to `ElectraForSequenceClassification`. The
Hugging Face side is imported only when used: it needs the `hf` extra (safetensors).
"""

import json
import posixpath

import tensorflow as tf
from absl import flags

from electra_tf import cli
from electra_tf import hparams as hp
from electra_tf.conversion import reference, saved_model


def _beside(path, name):
    """`name` in checkpoint folder `path` (or beside prefix `path`) when it exists, else None."""
    folder = path if tf.io.gfile.isdir(path) else posixpath.dirname(path)
    candidate = posixpath.join(folder, name)
    return candidate if tf.io.gfile.exists(candidate) else None


def _read_reference(path, hparams, vocab_file):
    vocab_file = vocab_file or _beside(path, "vocab.txt")
    return reference.load_reference_checkpoint(path, hparams, vocab_file), vocab_file


def _read_ours(path, hparams, vocab_file):
    if hparams:
        raise ValueError(
            "--hparams does not apply to --from ours: the model dir's "
            "pretrain_config.json fixes the model."
        )
    if saved_model.is_finetuned_model_dir(path):
        finetuned = saved_model.load_finetuned_model(path, vocab_file)
        return finetuned, finetuned.vocab_file
    if vocab_file is None:  # the model dir's copy, else DATA/vocab.txt of DATA/models/NAME
        folder = path if tf.io.gfile.isdir(path) else posixpath.dirname(path)
        data_dir = posixpath.dirname(posixpath.dirname(folder.rstrip("/")))
        vocab_file = _beside(path, "vocab.txt") or _beside(data_dir or ".", "vocab.txt")
    return reference.load_model_dir(path, vocab_file), vocab_file


def _read_hf(path, hparams, vocab_file):
    from electra_tf.conversion import huggingface  # pylint: disable=import-outside-toplevel

    vocab_file = vocab_file or huggingface.folder_vocab(path)
    return huggingface.load_pretraining_model(path, hparams, vocab_file), vocab_file


def _write_ours(model, output, vocab_file):
    checkpoint = reference.save_model_dir(model, output, vocab_file)
    model_dir = output.rstrip("/")
    print(
        f"Wrote {checkpoint}. Continue pre-training with:\n  python run_pretraining.py "
        f"--data_dir={posixpath.dirname(posixpath.dirname(model_dir))} "
        f"--model_name={posixpath.basename(model_dir)} "
        f"--hparams='{json.dumps(reference.architecture_hparams(model.pretrain_config))}'"
    )
    return [checkpoint]


def _write_hf(model, output, vocab_file):
    if not vocab_file:
        raise ValueError("--to hf needs a vocabulary for the tokenizer files: pass --vocab_file.")
    if isinstance(model, saved_model.FinetunedModel):
        written = [model.save_sequence_classifier(output)]
    else:
        from electra_tf.conversion import huggingface  # pylint: disable=import-outside-toplevel

        written = huggingface.save_pretraining_model(model, output, vocab_file)
    print("Wrote " + ", ".join(written))
    return written


def _write_saved_model(model, output, vocab_file):
    del vocab_file  # the fine-tuned model's own (or --vocab_file, applied when reading)
    if not isinstance(model, saved_model.FinetunedModel):
        raise ValueError(
            "--to saved_model exports a fine-tuned classifier or regressor: pass "
            "--from ours --input DATA/models/NAME/finetuning_models/<task>_model_<trial> "
            "(fine-tune a pre-trained model with run_finetuning.py first)."
        )
    info = model.info
    model.export_saved_model(output)
    inputs = "text_a, text_b" if info["text_pairs"] else "text_a"
    print(
        f"Wrote {output}: {info['kind']} model for {info['task']}, serving_default({inputs}) on "
        "[B] strings; load it with tensorflow and `import tensorflow_text`."
    )
    return [output]


# Format -> (input path, hparams dict, vocab file or None)
#   -> (PretrainingModel or FinetunedModel, vocab file).
READERS = {"reference": _read_reference, "ours": _read_ours, "hf": _read_hf}
# Format -> (model, output path, vocab file or None) -> the paths written.
WRITERS = {"ours": _write_ours, "hf": _write_hf, "saved_model": _write_saved_model}


def convert(source, target, input_path, output, vocab_file=None, hparams=None):
    """Reads `input_path` as `source`, writes `output` as `target`; returns the paths written."""
    if source == target:
        raise ValueError(f"--from and --to are both {source!r}: nothing to convert.")
    model, vocab_file = READERS[source](input_path, hp.load_hparams(hparams), vocab_file)
    return WRITERS[target](model, output, vocab_file)


def _define_flags(fv):
    flags.DEFINE_enum("from", None, sorted(READERS), "Format of --input.", flag_values=fv)
    flags.DEFINE_enum("to", None, sorted(WRITERS), "Format to write to --output.", flag_values=fv)
    flags.DEFINE_string(
        "input",
        None,
        "reference: TF1 checkpoint folder or prefix; ours: model dir "
        "(pre-trained, or fine-tuned: finetuning_models/<task>_model_<trial>) "
        "or its ckpt-N; hf: a model folder, or one holding discriminator/ and "
        "generator/.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output",
        None,
        "ours: DATA/models/NAME; hf: a folder that receives "
        "discriminator/ and generator/ (a fine-tuned model: the folder of its "
        "ElectraForSequenceClassification); saved_model: the export folder.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "vocab_file",
        None,
        "The vocabulary (default: vocab.txt found with the input).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "hparams",
        None,
        "JSON dict or file of PretrainingConfig hparams and encoder "
        "keys the input does not tell (e.g. num_attention_heads).",
        flag_values=fv,
    )


def main(fv):
    convert(
        fv["from"].value,
        fv["to"].value,
        fv["input"].value,
        fv["output"].value,
        vocab_file=fv["vocab_file"].value,
        hparams=fv["hparams"].value,
    )


COMMAND = cli.Command(
    usage=f"--from {{{','.join(sorted(READERS))}}} --to {{{','.join(sorted(WRITERS))}}} "
    "--input PATH --output PATH [flags]",
    define_flags=_define_flags,
    main=main,
    required=("from", "to", "input", "output"),
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
