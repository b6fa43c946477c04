"""Exports of fine-tuned sentence models: a SavedModel reading raw strings (loaded in a fresh
process with only tensorflow and tensorflow_text) and HF ElectraForSequenceClassification."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_ENCODER

from electra_tf import tokenization
from electra_tf.conversion import saved_model
from electra_tf.finetuning import features
from electra_tf.finetuning.model import build_finetuning_model
from electra_tf.finetuning.tasks import InputExample, Task
from electra_tf.modeling import EncoderConfig

WORDS = (
    "the a cat dog sat on mat ran far away is good bad very not quite ##s ##ing run "
    "it was movie film plot , . ! ?"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
LABELS = ("negative", "positive", "neutral")
MAX_SEQ_LENGTH = 12
PAIRS = [
    ("the cat sat on the mat", "a dog ran"),
    ("very good movie !", "not bad"),
    ("It was quite BAD.", ""),
    ("the plot", "the cat sat on the mat , the dog ran far away"),
]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return str(path)


def _model(kind):
    sizes = dict(TINY_ENCODER, max_position_embeddings=32)
    config = EncoderConfig(vocab_size=len(VOCAB), embedding_size=8, **sizes)
    task = Task(
        "toy",
        kind,
        "tsv",
        {},
        ("accuracy",),
        labels={"classification": LABELS, "tagging": ("PER",)}.get(kind),
        regression_range=(0.0, 5.0) if kind == "regression" else None,
    )
    model = build_finetuning_model(config, task)
    model.build_all(MAX_SEQ_LENGTH)
    rng = np.random.default_rng(0)
    for v in model.variables:  # large random weights: outputs that differ between inputs
        if v.dtype == "float32":
            v.assign(rng.normal(1.0 if v.path.endswith("gamma") else 0.0, 0.5, v.shape))
    return model


def _python_features(vocab_file, pairs):
    examples = [InputExample(i, a, b or None) for i, (a, b) in enumerate(pairs)]
    return features.sentence_features(
        examples, tokenization.FullTokenizer(vocab_file), MAX_SEQ_LENGTH
    )


def _keras_logits(model, arrays):
    inputs = {k: tf.constant(arrays[k]) for k in ("input_ids", "input_mask", "segment_ids")}
    encoded = model.encoder(inputs, training=False)
    return model.head(encoded["pooled_output"], training=False).numpy()


def test_truncated_lengths_match_the_reference_loop():
    cases = [(a, b, m) for a in range(9) for b in range(9) for m in range(8)]
    new_a, new_b = saved_model.truncated_lengths(*(tf.constant(x, tf.int64) for x in zip(*cases)))
    for (a, b, m), got_a, got_b in zip(cases, new_a.numpy(), new_b.numpy()):
        tokens_a, tokens_b = list(range(a)), list(range(b))
        features.truncate_pair(tokens_a, tokens_b, m)
        assert (got_a, got_b) == (len(tokens_a), len(tokens_b)), (a, b, m)


def test_graph_features_equal_the_python_featurization(vocab_file):
    module = saved_model.SentenceServing(
        _model("classification"), tokenization.FullTokenizer(vocab_file), MAX_SEQ_LENGTH, LABELS
    )
    long_a = "the cat sat on the mat and the dog ran far away , very far away"
    pairs = PAIRS + [(long_a, ""), (long_a, "not bad"), (long_a, long_a + " !"), ("", "")]
    got = module.featurize(tf.constant([a for a, _ in pairs]), tf.constant([b for _, b in pairs]))
    expected = _python_features(vocab_file, pairs)
    for key, value in got.items():
        np.testing.assert_array_equal(value.numpy(), expected[key], err_msg=key)


_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
pairs = json.loads(sys.argv[2])
out = serve(text_a=tf.constant([a for a, _ in pairs]), text_b=tf.constant([b for _, b in pairs]))
assert not [m for m in sys.modules if m.startswith("electra_tf")]
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "labels": [l.decode() for l in out["labels"].numpy()]}))
"""


def test_saved_model_in_a_fresh_process(vocab_file, tmp_path):
    model = _model("classification")
    export_dir = saved_model.export_saved_model(
        model,
        str(tmp_path / "export"),
        vocab_file,
        MAX_SEQ_LENGTH,
        label_list=LABELS,
        text_pairs=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, export_dir, json.dumps(PAIRS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = tf.nn.softmax(_keras_logits(model, _python_features(vocab_file, PAIRS))).numpy()
    np.testing.assert_allclose(served["probabilities"], expected, rtol=0, atol=1e-5)
    assert served["labels"] == [LABELS[i] for i in expected.argmax(-1)]
    assert np.ptp(expected, axis=0).max() > 0.05  # the texts get different outputs


def test_regression_saved_model_single_texts(vocab_file, tmp_path):
    model = _model("regression")
    export_dir = saved_model.export_saved_model(
        model, str(tmp_path / "export"), vocab_file, MAX_SEQ_LENGTH, regression_range=(0.0, 5.0)
    )
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    texts = [a for a, _ in PAIRS]
    out = serve(text_a=tf.constant(texts))
    assert set(out) == {"predictions"}
    expected = 5.0 * _keras_logits(model, _python_features(vocab_file, [(t, "") for t in texts]))
    np.testing.assert_allclose(out["predictions"].numpy(), expected[:, 0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_hugging_face_sequence_classifier(vocab_file, tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    model = _model(kind)
    folder = saved_model.save_sequence_classifier(
        model, str(tmp_path / "hf"), vocab_file, LABELS if kind == "classification" else None
    )
    hf_model = transformers.ElectraForSequenceClassification.from_pretrained(folder).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    arrays = _python_features(vocab_file, PAIRS)
    encoded = [
        hf_tokenizer(
            a,
            b or None,
            padding="max_length",
            truncation="longest_first",
            max_length=MAX_SEQ_LENGTH,
        )
        for a, b in PAIRS
    ]
    for key, hf_key in (
        ("input_ids", "input_ids"),
        ("input_mask", "attention_mask"),
        ("segment_ids", "token_type_ids"),
    ):
        np.testing.assert_array_equal([e[hf_key] for e in encoded], arrays[key], err_msg=key)
    with torch.no_grad():
        logits = hf_model(
            input_ids=torch.tensor(arrays["input_ids"], dtype=torch.long),
            attention_mask=torch.tensor(arrays["input_mask"], dtype=torch.long),
            token_type_ids=torch.tensor(arrays["segment_ids"], dtype=torch.long),
        ).logits
    np.testing.assert_allclose(logits.numpy(), _keras_logits(model, arrays), rtol=0, atol=1e-4)
    if kind == "classification":
        assert hf_model.config.id2label == dict(enumerate(LABELS))
    else:
        assert (hf_model.config.num_labels, hf_model.config.problem_type) == (1, "regression")


def test_other_kinds_are_refused(vocab_file, tmp_path):
    model = _model("tagging")
    with pytest.raises(ValueError, match="tagging"):
        saved_model.save_sequence_classifier(model, str(tmp_path / "hf"), vocab_file)
    with pytest.raises(ValueError, match="tagging"):
        saved_model.export_saved_model(model, str(tmp_path / "sm"), vocab_file, MAX_SEQ_LENGTH)
