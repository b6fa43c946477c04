"""`tagging_reference` (issue 11, item 5): each of its four behaviours, the reference's
(google-research/electra finetune/tagging) against ours, on hand-made cases whose expected outputs
were worked out by hand from the reference's code. No training."""

import dataclasses

import numpy as np
import pytest

from electra_tf.finetuning import features, metrics, tasks
from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.tokenization import FullTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "dog", "barks", "un", "##believ"]
VOCAB += ["##able", "##ness", "big", "."]
CLS, SEP = 2, 3
# the | un ##believ ##able | dog | barks: 4 words, 6 sub-tokens.
WORDS = ["the", "unbelievable", "dog", "barks"]
TAGS = ["B-NP", "I-NP", "I-NP", "B-VP"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return FullTokenizer(str(path), do_lower_case=True)


def _features(tokenizer, max_seq_length, reference, truncation_bug=False, words=WORDS, tags=TAGS):
    labels = ["B-NP", "B-VP", "E-NP", "I-NP", "O", "S-NP", "S-VP"]  # any list holding the tags
    example = tasks.TaggingExample(0, words, tags)
    arrays = features.tagging_features(
        [example], tokenizer, max_seq_length, labels, "BIOES", reference, truncation_bug
    )
    kept = np.flatnonzero(arrays["label_weights"][0]).tolist()
    return arrays, kept, [labels[i] for i in arrays["label_ids"][0][kept]]


# ----- (a) segment ids ---------------------------------------------------------------------------


def test_segment_ids_are_1_on_every_token_in_the_reference(tokenizer):
    ours, _, _ = _features(tokenizer, 10, reference=False)
    ref, _, _ = _features(tokenizer, 10, reference=True)
    np.testing.assert_array_equal(ref["input_ids"], ours["input_ids"])  # nothing cut at 10
    assert ours["segment_ids"][0].tolist() == [0] * 10
    assert ref["segment_ids"][0].tolist() == [1] * 8 + [0, 0]  # [CLS] ... [SEP], not padding


# ----- (b) truncation ----------------------------------------------------------------------------


def test_truncation_whole_words_against_sub_tokens(tokenizer):
    # max 5: ours keeps "un ##believ" (its first piece fits) with its label; the reference keeps
    # whole words only: "unbelievable" and [SEP] need 5 more slots after "[CLS] the".
    ours, kept, labels = _features(tokenizer, 5, reference=False)
    assert ours["input_ids"][0].tolist() == [CLS, 5, 8, 9, SEP]
    assert (kept, labels) == ([1, 2], ["B-NP", "I-NP"])
    ref, kept, labels = _features(tokenizer, 5, reference=True)
    assert ref["input_ids"][0].tolist() == [CLS, 5, SEP, 0, 0]
    assert (kept, labels) == ([1], ["B-NP"])
    # Everything fits in 8 in both.
    for reference in (False, True):
        arrays, kept, labels = _features(tokenizer, 8, reference)
        assert arrays["input_ids"][0].tolist() == [CLS, 5, 8, 9, 10, 6, 7, SEP]
        assert (kept, labels) == ([1, 2, 5, 6], ["B-NP", "I-NP", "E-NP", "S-VP"])


def test_truncation_reference_bug(tokenizer):
    # The released test charges 4 words + 2 for every next word: at 10 tokens a word is added
    # only while [CLS] + tokens so far <= 10 - 7, so "dog" and "barks" are cut though they fit.
    arrays, kept, labels = _features(tokenizer, 10, reference=True, truncation_bug=True)
    assert arrays["input_ids"][0].tolist() == [CLS, 5, 8, 9, 10, SEP, 0, 0, 0, 0]
    assert arrays["segment_ids"][0].tolist() == [1] * 6 + [0] * 4
    assert (kept, labels) == ([1, 2], ["B-NP", "I-NP"])
    # More than max_seq_length - 3 words: [SEP] alone, no word labeled.
    arrays, kept, _ = _features(tokenizer, 6, reference=True, truncation_bug=True)
    assert arrays["input_ids"][0].tolist() == [SEP, 0, 0, 0, 0, 0] and kept == []
    # A word longer than the charge passes max_seq_length (the reference's assertion fails).
    long_word = (["unbelievableness"], ["B-NP"])
    with pytest.raises(ValueError, match="gives 6 tokens, over max_seq_length 5"):
        _features(tokenizer, 5, True, True, *long_word)
    arrays, kept, _ = _features(tokenizer, 5, True, False, *long_word)  # fixed: the word is cut
    assert arrays["input_ids"][0].tolist() == [CLS, SEP, 0, 0, 0] and kept == []
    with pytest.raises(ValueError, match="needs tagging_reference"):
        _features(tokenizer, 10, reference=False, truncation_bug=True)
    with pytest.raises(ValueError, match="needs tagging_reference true"):
        FinetuningConfig(
            "m",
            "/unused",
            init_checkpoint=None,
            tagging_reference=False,
            tagging_truncation_reference_bug=True,
        )


# ----- (c) label set -----------------------------------------------------------------------------


def _chunk_task(folder, reference, dev="big B-ADJP\ndog B-NP\n"):
    (folder / "train.txt").write_text(
        "-DOCSTART- -X- O\n\nthe DT B-NP\ndog NN I-NP\nbarks VBZ B-VP\n. . O\n\n"
    )
    (folder / "dev.txt").write_text(dev)
    task = tasks.get_task("chunk", raw_dir=str(folder))
    return dataclasses.replace(task, tagging_reference=reference)


def test_label_set_is_the_sorted_tags_seen_in_every_split(tmp_path, tokenizer):
    ours = _chunk_task(tmp_path, reference=False)
    ref = _chunk_task(tmp_path, reference=True)
    assert len(ours.label_list) == 1 + 4 * 11  # "O", then B/I/E/S of every CoNLL-2000 type
    assert ours.label_list[:6] == ["O", "B-ADJP", "I-ADJP", "E-ADJP", "S-ADJP", "B-ADVP"]
    # The reference: its BIOES tags of train and dev (dev's S-ADJP included), sorted.
    assert ref.label_list == ["B-NP", "E-NP", "O", "S-ADJP", "S-NP", "S-VP"]
    example = ref.get_examples("train")[0]
    ids = {
        name: features.featurize(task, [example], tokenizer, 8)["label_ids"][0, 1:5].tolist()
        for name, task in (("ours", ours), ("ref", ref))
    }
    np_ = ours.label_list.index("B-NP")
    assert ids == {"ours": [np_, np_ + 2, ours.label_list.index("S-VP"), 0], "ref": [0, 1, 5, 2]}


def test_label_set_errors_name_the_file_and_sentence(tmp_path):
    task = _chunk_task(tmp_path, reference=True, dev="big B-XYZ\n")
    with pytest.raises(ValueError, match=r"dev\.txt, sentence 1: tag 'S-XYZ' has a type"):
        _ = task.label_list
    task = _chunk_task(tmp_path, reference=True, dev="big B\n")
    with pytest.raises(ValueError, match=r"dev\.txt, sentence 1: Tag 'B' has no entity type"):
        _ = task.label_list


# ----- (d) span reading and F1 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, reference, seqeval",
    [
        (  # the same for well-formed tags and for I- after O
            ["I-PER", "I-PER", "O", "B-LOC"],
            [("PER", 0, 1), ("LOC", 3, 3)],
            [("PER", 0, 1), ("LOC", 3, 3)],
        ),
        # A type change without B- does not split: the span takes its last tag's type.
        (["B-PER", "I-LOC", "I-LOC"], [("LOC", 0, 2)], [("PER", 0, 0), ("LOC", 1, 2)]),
        # E- does not end a span; an I- after it continues the span.
        (["B-PER", "E-PER", "I-PER", "O"], [("PER", 0, 2)], [("PER", 0, 1), ("PER", 2, 2)]),
        (
            ["S-PER", "E-PER", "B-PER"],
            [("PER", 0, 1), ("PER", 2, 2)],
            [("PER", 0, 0), ("PER", 1, 1), ("PER", 2, 2)],
        ),
        ([], [], []),
    ],
)
def test_reference_span_reading(tags, reference, seqeval):
    assert metrics.reference_entities(tags) == reference
    assert metrics.get_entities(tags) == seqeval


def test_span_f1_reference_against_seqeval():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-LOC", "O", "B-LOC"]]
    # Reference: predicted {LOC 0-1, LOC 3}: 1 of 2 right, 1 of 2 found -> 50.
    assert metrics.entity_f1(gold, pred, reference=True) == pytest.approx(
        {"precision": 50.0, "recall": 50.0, "f1": 50.0}
    )
    # seqeval: predicted {PER 0, LOC 1, LOC 3}: 1 of 3 right, 1 of 2 found -> 40.
    assert metrics.entity_f1(gold, pred) == pytest.approx(
        {"precision": 100 / 3, "recall": 50.0, "f1": 40.0}
    )
    # Gold PER 0-1 and PER 2; "B-PER E-PER I-PER" is both for seqeval, one PER 0-2 for the
    # reference (nothing right: all 0).
    gold, pred = [["B-PER", "E-PER", "S-PER", "O"]], [["B-PER", "E-PER", "I-PER", "O"]]
    assert metrics.entity_f1(gold, pred) == {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    assert metrics.entity_f1(gold, pred, True) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # Training labels follow the same reading.
    assert features.encode_tags(["B-PER", "I-LOC"], "BIOES", reference=True) == ["B-LOC", "E-LOC"]
    assert features.encode_tags(["B-PER", "I-LOC"], "BIOES") == ["S-PER", "S-LOC"]


# ----- the switch through the runner -------------------------------------------------------------


@pytest.mark.parametrize("reference", [True, False])
def test_switch_reaches_features_labels_and_scores(tmp_path, reference):
    """FinetuningConfig -> FinetuningRunner: the switch picks the task's labels, its features'
    segment ids and the span reading of `evaluate` (predictions given, no model)."""
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    folder = tmp_path / "finetuning_data" / "chunk"
    folder.mkdir(parents=True)
    _chunk_task(folder, reference, dev="the B-NP\ndog I-PP\n\nbig B-ADJP\n")
    hparams = dict(init_checkpoint=None, task_names=["chunk"], max_seq_length=8)
    config = FinetuningConfig("m", str(tmp_path), tagging_reference=reference, **hparams)
    assert FinetuningConfig("m", str(tmp_path), **hparams).tagging_reference  # the default
    assert "tagging_reference" in runner_lib._TRAINING_KEYS
    runner = runner_lib.FinetuningRunner(config)
    task = runner.tasks[0]
    train = runner.split(task, "train", is_training=True).arrays
    assert train["segment_ids"][0].tolist() == [int(reference)] * 6 + [0, 0]
    assert len(task.label_list) == (7 if reference else 45)  # + dev's B-PP E-PP S-ADJP
    dev = runner.split(task, "dev")
    predicted = np.zeros_like(dev.arrays["label_ids"])  # gold for sentence 1 is "the dog"
    predicted[0, 1:3] = [task.label_list.index(t) for t in ("B-NP", "E-NP")]
    predicted[1, 1] = task.label_list.index("S-ADJP")

    def predict(arrays, batch_size):
        del arrays, batch_size
        return {"predictions": predicted, "losses": np.zeros(2, np.float32)}

    scores = runner.evaluate(task, predict)
    # Reference: gold "B-NP I-PP" is one PP span, missed by the predicted NP: 1 of 2 right, 1 of
    # 2 found. seqeval: NP 0 and PP 1, matched by neither: 1 of 2 right (ADJP), 1 of 3 found.
    expected = {"precision": 50.0, "recall": 50.0} if reference else {"precision": 50.0}
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    if not reference:
        assert scores["recall"] == pytest.approx(100 / 3)
