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
import os
import posixpath

import tensorflow as tf

from electra_tf import cli
from electra_tf import hparams as hp
from electra_tf.conversion import mobilebert, reference, saved_model


def _beside(path, name):
    """`name` in checkpoint folder `path` (or beside prefix `path`) when it exists, else None."""
    folder = path if tf.io.gfile.isdir(path) else posixpath.dirname(path)
    candidate = posixpath.join(folder, name)
    return candidate if tf.io.gfile.exists(candidate) else None


def _read_reference(path, hparams, vocab_file):
    if not (tf.io.gfile.exists(path + ".index") or tf.train.latest_checkpoint(path)):
        raise FileNotFoundError(
            f"--input {path}: no TF1 checkpoint there (a folder with a 'checkpoint' file and "
            "model.ckpt.*, or a checkpoint prefix such as DIR/model.ckpt)."
        )
    vocab_file = vocab_file or _beside(path, "vocab.txt")
    return reference.load_reference_checkpoint(path, hparams, vocab_file), vocab_file


def _read_ours(path, hparams, vocab_file, task=None):
    if hparams:
        raise ValueError(
            "--hparams does not apply to --from ours: the model dir's "
            "pretrain_config.json fixes the model."
        )
    if saved_model.is_finetuned_model_dir(path):
        finetuned = saved_model.load_finetuned_model(path, vocab_file, task)
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


def _write_reference(model, output, vocab_file):
    del model, output, vocab_file
    raise ValueError(
        "--to reference writes original BERT/MobileBERT checkpoints (from a bert_config.json "
        "checkpoint or a Hugging Face MobileBERT folder); ELECTRA models go --to ours or hf."
    )


# Format -> (model, output path, vocab file or None) -> the paths written.
WRITERS = {
    "ours": _write_ours,
    "hf": _write_hf,
    "saved_model": _write_saved_model,
    "reference": _write_reference,
}


def convert(
    source, target, input_path, output, vocab_file=None, hparams=None, overwrite=False, task=None
):
    """Reads `input_path` as `source`, writes `output` as `target`; returns the paths written.

    `task` picks one task of a jointly fine-tuned model (`--from ours`).

    A non-empty `output` is refused unless `overwrite`; then it is moved aside, replaced, and
    deleted only once the new output is complete (restored if writing fails).
    """
    if source == target:
        raise ValueError(f"--from and --to are both {source!r}: nothing to convert.")
    if not tf.io.gfile.exists(output) or not tf.io.gfile.listdir(output):
        return _convert(source, target, input_path, output, vocab_file, hparams, task)
    if not overwrite:
        raise FileExistsError(
            f"--output {output} is not empty; pass --overwrite to replace it (stale files of the "
            "old contents are removed), or choose another folder."
        )
    aside = f"{output.rstrip('/')}.old-{os.getpid()}"
    tf.io.gfile.rename(output, aside)
    try:
        written = _convert(source, target, input_path, output, vocab_file, hparams, task)
    except BaseException:
        if tf.io.gfile.exists(output):
            tf.io.gfile.rmtree(output)
        tf.io.gfile.rename(aside, output)
        raise
    tf.io.gfile.rmtree(aside)
    return written


def _convert(source, target, input_path, output, vocab_file, hparams, task):
    if task is not None and source != "ours":
        raise ValueError("--task picks a task of a fine-tuned model: it needs --from ours.")
    if mobilebert.is_bert_family(source, input_path):
        if hparams or target not in ("hf", "reference", "ours"):
            raise ValueError(
                f"{input_path} is a BERT/MobileBERT model: it converts --to hf, reference or "
                "ours, and its config file fixes the model (no --hparams)."
            )
        _, kind = mobilebert.convert(source, target, input_path, output, vocab_file)
        print(f"Wrote {output} ({kind}).")
        return [output]
    extra = {"task": task} if task is not None else {}
    model, vocab_file = READERS[source](input_path, hp.load_hparams(hparams), vocab_file, **extra)
    return WRITERS[target](model, output, vocab_file)


FLAGS = (
    ("from", tuple(sorted(READERS)), None, "Format of --input."),
    ("to", tuple(sorted(WRITERS)), None, "Format to write to --output."),
    ("input", str, None, "reference: TF1 checkpoint; ours: model dir or ckpt-N; hf: folder."),
    ("output", str, None, "ours: DATA/models/NAME; hf: a folder; saved_model: export folder."),
    ("vocab_file", str, None, "The vocabulary (default: vocab.txt found with the input)."),
    ("hparams", str, None, "JSON: PretrainingConfig hparams and encoder keys not in the input."),
    ("overwrite", bool, False, "Replace a non-empty --output (only once the new one is written)."),
    ("task", str, None, "ours: the task to export from a jointly fine-tuned model."),
)


def main(fv):
    source, target, input_path, output = cli.values(fv, "from", "to", "input", "output").values()
    convert(
        source,
        target,
        input_path,
        output,
        **cli.values(fv, "vocab_file", "hparams", "overwrite", "task"),
    )


COMMAND = cli.Command(
    usage=f"--from {{{','.join(sorted(READERS))}}} --to {{{','.join(sorted(WRITERS))}}} "
    "--input PATH --output PATH [flags]",
    flags=FLAGS,
    main=main,
    required=("from", "to", "input", "output"),
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
