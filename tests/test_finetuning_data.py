"""Fine-tuning data: task readers on real Korean data, features, span-QA round trip, metrics."""

import json
import math

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
from conftest import shared_path

from electra_tf.finetuning import features, metrics, qa, tasks
from electra_tf.tokenization import FullTokenizer


@pytest.fixture(scope="module")
def ko_tokenizer():
    return FullTokenizer(shared_path("vocab", "ko_cased_vocab.txt"), do_lower_case=False)


def shared_task(name):
    return tasks.get_task(name, raw_dir=shared_path("finetune", name))


def squad_data(*paragraphs):
    """A SQuAD-format "data" list; each paragraph is (context, [(qid, question, answer, start)])."""
    return [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {
                            "id": qid,
                            "question": question,
                            "is_impossible": answer is None,
                            "answers": []
                            if answer is None
                            else [{"text": answer, "answer_start": start}],
                        }
                        for qid, question, answer, start in qas
                    ],
                }
                for context, qas in paragraphs
            ],
        }
    ]


def one_hot_outputs(feats):
    """Logits that put all mass on each window's labeled start/end (unlabeled windows: flat)."""
    start = np.full(feats.arrays["input_ids"].shape, -1e4)
    end = start.copy()
    for f, (s, e) in enumerate(zip(feats.arrays["start_positions"], feats.arrays["end_positions"])):
        if s > 0:
            start[f, s] = end[f, e] = 0.0
    return {"start_logits": start, "end_logits": end}


# ----- readers on the shared Korean data --------------------------------------------------------


def test_question_pair_reader():
    task = shared_task("question_pair")
    assert (task.kind, task.label_list, task.metrics, task.eval_split) == (
        "classification",
        ["0", "1"],
        ("accuracy",),
        "dev",
    )
    counts = {split: len(task.get_examples(split)) for split in ("train", "dev", "test")}
    assert counts == {"train": 6136, "dev": 682, "test": 758}
    train = task.get_examples("train")
    assert sum(ex.label == "1" for ex in train) == 1967
    assert (train[0].text_a, train[0].label) == ("여자친구가 데이트 시간을 너무 안 지켜.", "0")
    doubled = task.get_examples("train", double_unordered=True)
    assert len(doubled) == 2 * 6136 and doubled[6136 + 5].text_a == train[5].text_b
    assert doubled[6136 + 5].eid == 6136 + 5 and doubled[6136 + 5].label == train[5].label


def test_korsts_reader():
    task = shared_task("korsts")
    assert (task.kind, task.regression_range, task.metrics) == (
        "regression",
        (0.0, 5.0),
        ("pearson_spearman", "mse"),
    )
    counts = {split: len(task.get_examples(split)) for split in ("train", "dev", "test")}
    assert counts == {"train": 5749, "dev": 1500, "test": 1379}  # KorSTS as published
    dev = task.get_examples("dev")
    assert dev[1].label == 4.75 and dev[1].text_b == "아이가 말을 타고 있다."
    assert all(0.0 <= ex.label <= 5.0 for ex in dev)


def test_naver_ner_reader():
    task = shared_task("naver_ner")
    assert task.eval_split == "test" and "train" in task.splits  # KoELECTRA: train.tsv, test.tsv
    assert task.existing_splits() == ["test"]  # the shared copy holds the test file only
    examples = task.get_examples("test")
    assert len(examples) == 9000 and sum(len(ex.words) for ex in examples) == 106896
    assert examples[0].tags[:3] == ["O", "B-NUM", "I-NUM"]  # "NUM-B NUM-I" in the file
    types = {t[2:] for ex in examples for t in ex.tags if t != "O"}
    assert types <= set(task.labels)
    # KoELECTRA trains with 29 BIO labels; the reference's BIOES gives 1 + 14 * 4.
    assert len(tasks.tag_labels(task.labels, "BIO")) == 29 and len(task.label_list) == 57


@pytest.fixture(scope="module")
def korquad_examples():
    return shared_task("korquad").get_examples("dev")


def test_korquad_reader(korquad_examples):
    task = shared_task("korquad")
    assert (task.kind, task.version_2, task.metrics) == ("span_qa", False, ("korquad",))
    assert task.existing_splits() == ["dev"]
    assert len(korquad_examples) == 5774
    assert len({id(ex.doc) for ex in korquad_examples}) == 963  # of 964 paragraphs, one has no qas
    assert all(ex.start_word is not None and not ex.is_impossible for ex in korquad_examples)
    first = korquad_examples[0]
    assert first.answers == ["1989년 2월 15일"] and first.doc.words[first.start_word] == "1989년"
    # The located words really hold the answer at its offset.
    for ex in korquad_examples[:500]:
        assert ex.doc.context[ex.start_char : ex.start_char + len(ex.answer_text)] == ex.answer_text


# ----- sentence features ------------------------------------------------------------------------


def test_sentence_features_equal_reference_tokenization(ko_tokenizer):
    task = shared_task("korsts")
    examples = task.get_examples("dev")[:200]
    arrays = features.featurize(task, examples, ko_tokenizer, 128)
    assert {k: v.shape for k, v in arrays.items()} == {
        "input_ids": (200, 128),
        "input_mask": (200, 128),
        "segment_ids": (200, 128),
        "eid": (200,),
        "targets": (200,),
    }
    for i, ex in enumerate(examples):
        a, b = ko_tokenizer.tokenize(ex.text_a), ko_tokenizer.tokenize(ex.text_b)
        tokens = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
        n = len(tokens)
        assert arrays["input_ids"][i, :n].tolist() == ko_tokenizer.convert_tokens_to_ids(tokens)
        assert arrays["input_ids"][i, n:].sum() == 0 and arrays["input_mask"][i].sum() == n
        assert arrays["segment_ids"][i].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [
            0
        ] * (128 - n)
        assert arrays["targets"][i] == pytest.approx(ex.label / 5.0)


def test_pair_truncation_drops_from_the_longer_side(ko_tokenizer):
    ex = tasks.InputExample(0, "가 나 다 라 마 바 사 아 자 차", "하 하 하")
    arrays = features.sentence_features([ex], ko_tokenizer, 10, label_list=["x"])
    tokens = ko_tokenizer.convert_ids_to_tokens(arrays["input_ids"][0].tolist())
    # Budget 7: the 10-token side loses its last tokens until it is no longer the longer one.
    assert tokens == ["[CLS]", "가", "나", "다", "라", "[SEP]", "하", "하", "하", "[SEP]"]
    assert arrays["segment_ids"][0].tolist() == [0] * 6 + [1] * 4
    # Budget 5 for 3 + 6: b shrinks to 3, then on a tie b (not a) loses one more.
    ab = features.sentence_features(
        [tasks.InputExample(0, "가 나 다", "가 나 다 라 마 바")], ko_tokenizer, 8, label_list=["x"]
    )
    assert ko_tokenizer.convert_ids_to_tokens(ab["input_ids"][0].tolist()) == [
        "[CLS]",
        "가",
        "나",
        "다",
        "[SEP]",
        "가",
        "나",
        "[SEP]",
    ]
    single = features.sentence_features(
        [tasks.InputExample(0, "가 나 다 라 마 바")], ko_tokenizer, 5, label_list=["x"]
    )
    assert ko_tokenizer.convert_ids_to_tokens(single["input_ids"][0].tolist()) == [
        "[CLS]",
        "가",
        "나",
        "다",
        "[SEP]",
    ]
    assert single["segment_ids"].sum() == 0


def test_classification_labels(ko_tokenizer):
    task = shared_task("question_pair")
    examples = task.get_examples("dev")
    arrays = features.featurize(task, examples, ko_tokenizer, 64)
    assert arrays["label_ids"].tolist() == [int(ex.label) for ex in examples]
    assert arrays["eid"].tolist() == list(range(len(examples)))
    with pytest.raises(ValueError, match="not in the task's labels"):
        features.sentence_features(
            [tasks.InputExample(0, "가", None, "2")], ko_tokenizer, 8, label_list=["0", "1"]
        )


# ----- tagging ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_tagging_alignment_and_round_trip(ko_tokenizer, scheme):
    task = shared_task("naver_ner")
    examples = task.get_examples("test")
    split = int(0.8 * len(examples))  # the shared data is one file: its tail stands in for dev
    dev = examples[split : split + 300]
    labels = tasks.tag_labels(task.labels, scheme)
    arrays = features.tagging_features(dev, ko_tokenizer, 128, labels, scheme)
    assert arrays["label_ids"].shape == arrays["label_weights"].shape == (300, 128)
    word_ids = features.word_values(arrays["label_ids"], arrays["label_weights"])
    for i, ex in enumerate(dev):
        first_positions, position = [], 1
        for word in ex.words:
            first_positions.append(position)
            position += len(ko_tokenizer.tokenize(word)) or 1
        kept = [p for p in first_positions if p < 127]
        assert np.flatnonzero(arrays["label_weights"][i]).tolist() == kept
        words = [labels[j] for j in word_ids[i]]
        assert words == features.encode_tags(ex.tags, scheme)[: len(kept)]
        if len(kept) == len(ex.words):  # the word labels decode back to the same entities
            assert metrics.get_entities(words) == metrics.get_entities(ex.tags)


def test_tagging_truncation_and_schemes(ko_tokenizer):
    ex = tasks.TaggingExample(
        0, ["임종석이", "서울", "경희대학교에서"], ["B-PER", "B-LOC", "B-ORG"]
    )
    labels = tasks.tag_labels(["LOC", "ORG", "PER"], "BIOES")
    arrays = features.tagging_features([ex], ko_tokenizer, 5, labels, "BIOES")
    # [CLS] 임종 ##석이 서울 [SEP]: the third word is cut with its label.
    assert arrays["label_weights"][0].tolist() == [0, 1, 0, 1, 0]
    assert [labels[i] for i in arrays["label_ids"][0]] == ["O", "S-PER", "O", "S-LOC", "O"]
    assert features.encode_tags(["I-PER", "I-PER", "O", "B-LOC"], "BIOES") == [
        "B-PER",
        "E-PER",
        "O",
        "S-LOC",
    ]
    assert features.encode_tags(["B-PER", "E-PER", "S-LOC"], "BIO") == ["B-PER", "I-PER", "B-LOC"]


# ----- span QA ----------------------------------------------------------------------------------


def test_korquad_round_trip(ko_tokenizer, korquad_examples):
    examples = korquad_examples  # all 5,774 dev questions
    feats = qa.qa_features(
        examples, ko_tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64
    )
    arrays = feats.arrays
    n = len(feats.windows)
    assert n > len(examples) and arrays["input_ids"].shape == (n, 384)
    for f, window in enumerate(feats.windows):
        s, e = arrays["start_positions"][f], arrays["end_positions"][f]
        assert s == e == 0 or window.offset <= s <= e < window.offset + window.length
        assert arrays["segment_ids"][f, window.offset : window.offset + window.length + 1].all()
    assert len(set(arrays["example_index"][arrays["start_positions"] > 0])) == len(examples)

    decoded = qa.postprocess_qa(examples, feats, one_hot_outputs(feats), max_answer_length=384)
    raw = normalized = representable = 0
    for ex, doc in zip(examples, feats.documents):
        predicted = decoded.predictions[ex.qas_id]
        raw += predicted == ex.answer_text
        normalized += metrics.squad_normalize(predicted) == metrics.squad_normalize(ex.answer_text)
        end_char = ex.start_char + len(ex.answer_text)
        if ex.start_char in {s for s, _ in doc.char_spans} and end_char in {
            e for _, e in doc.char_spans
        }:
            representable += 1
            assert (
                predicted == ex.answer_text
            )  # every answer on sub-token boundaries comes back exactly
    print(
        f"\nKorQuAD round trip over {len(examples)} questions: exact {raw / len(examples):.2%}, "
        f"after SQuAD normalisation {normalized / len(examples):.2%}; answers on sub-token "
        f"boundaries {representable / len(examples):.2%}"
    )
    # The rest end inside a WordPiece (임수경|을 is 임 ##수 ##경을): no token span spells them.
    assert raw == representable and 0.70 < representable / len(examples) < 0.73
    assert normalized >= raw


def test_cjk_context_without_spaces():
    tokenizer = FullTokenizer(shared_path("vocab", "zh_vocab.txt"))
    context = "北京大学是中国的一所大学。它位于北京市海淀区，2018年有学生3万人。"
    second_daxue = context.index("大学", 3)
    data = squad_data(
        (
            context,
            [
                ("q1", "北京大学在哪里？", "海淀区", context.index("海淀区")),
                ("q2", "它是什么？", "大学", second_daxue),
                ("q3", "哪一年？", "2018年", context.index("2018")),
            ],
        )
    )
    examples = qa.examples_from_squad(data)
    assert [len(w) for w in examples[0].doc.words[:5]] == [1] * 5
    feats = qa.qa_features(examples, tokenizer, max_seq_length=64, max_query_length=16)
    q2 = feats.windows[1]
    start = feats.arrays["start_positions"][1] - q2.offset + q2.doc_start
    assert feats.documents[1].char_spans[start][0] == second_daxue  # not the first "大学"
    decoded = qa.postprocess_qa(examples, feats, one_hot_outputs(feats))
    assert decoded.predictions == {"q1": "海淀区", "q2": "大学", "q3": "2018年"}


def test_final_text_keeps_original_spelling():
    tokenizer = FullTokenizer(shared_path("vocab", "en_uncased_vocab.txt"))
    context = "The leader was Steve Smith's (1895-1943) partner at Café  Müller ☃ in Paris."
    answers = [("Steve Smith", "q1"), ("1895", "q2"), ("Café  Müller", "q3"), ("☃", "q4")]
    data = squad_data(
        (context, [(qid, "who?", text, context.index(text)) for text, qid in answers])
    )
    examples = qa.examples_from_squad(data)
    feats = qa.qa_features(examples, tokenizer, max_seq_length=48, max_query_length=8)
    decoded = qa.postprocess_qa(examples, feats, one_hot_outputs(feats))
    assert decoded.predictions == {qid: text for text, qid in answers}
    assert decoded.nbest["q1"][0]["probability"] == pytest.approx(1.0)
    # A joint (beam) head's outputs: the labeled start first, its labeled end first.
    n = len(feats.windows)
    joint = {
        "start_top_index": np.stack([feats.arrays["start_positions"], np.zeros(n, int)], 1),
        "start_top_log_probs": np.tile([0.0, -9.0], (n, 1)),
        "end_top_index": np.zeros((n, 2, 2), int),
        "end_top_log_probs": np.tile([[0.0, -9.0], [-9.0, -9.0]], (n, 1, 1)),
    }
    joint["end_top_index"][:, 0, 0] = feats.arrays["end_positions"]
    assert qa.postprocess_qa(examples, feats, joint).predictions == decoded.predictions


def test_doc_stride_windows_and_max_context():
    tokenizer = FullTokenizer(shared_path("vocab", "en_uncased_vocab.txt"))
    context = " ".join(f"word{i}" if i != 70 else "target" for i in range(120))
    data = squad_data((context, [("q", "where?", "target", context.index("target"))]))
    examples = qa.examples_from_squad(data, is_training=True)
    feats = qa.qa_features(
        examples, tokenizer, max_seq_length=64, doc_stride=16, max_query_length=8
    )
    spans = feats.spans[0]
    query_length = len(tokenizer.tokenize("where?"))
    assert spans == qa.doc_spans(len(feats.documents[0].tokens), 64 - query_length - 3, 16)
    assert all(b[0] - a[0] == 16 for a, b in zip(spans, spans[1:]))
    target = feats.documents[0].tokens.index("target")
    holding = [i for i, (s, n) in enumerate(spans) if s <= target < s + n]
    labeled = np.flatnonzero(feats.arrays["start_positions"]).tolist()
    assert labeled == holding and len(holding) > 1
    best = [i for i in holding if qa.is_max_context(spans, i, target)]
    assert len(best) == 1
    decoded = qa.postprocess_qa(examples, feats, one_hot_outputs(feats))
    assert decoded.predictions == {"q": "target"}


def test_squad_v2_null_odds_threshold():
    tokenizer = FullTokenizer(shared_path("vocab", "en_uncased_vocab.txt"))
    context = "Paris is the capital of France."
    data = squad_data((context, [("a", "capital?", "Paris", 0), ("b", "king?", None, None)]))
    examples = qa.examples_from_squad(data, version_2=True, is_training=True)
    assert [ex.is_impossible for ex in examples] == [False, True]
    feats = qa.qa_features(examples, tokenizer, max_seq_length=24, max_query_length=6)
    assert feats.arrays["is_impossible"].tolist() == [0, 1]
    assert feats.arrays["start_positions"][1] == feats.arrays["end_positions"][1] == 0
    outputs = one_hot_outputs(feats)
    outputs["start_logits"][1, 0] = outputs["end_logits"][1, 0] = 2.0  # null 4 vs best span
    outputs["start_logits"][1, feats.arrays["start_positions"][0]] = 1.0
    outputs["end_logits"][1, feats.arrays["end_positions"][0]] = 0.5
    decoded = qa.postprocess_qa(examples, feats, outputs, version_2=True, na_threshold=0.0)
    assert decoded.null_odds["a"] == pytest.approx(-1e4 - 1e4 - 0.0)
    assert decoded.null_odds["b"] == pytest.approx(4.0 - 1.5)
    assert decoded.predictions == {"a": "Paris", "b": ""} and decoded.best_non_null["b"] == "Paris"
    assert (
        qa.postprocess_qa(examples, feats, outputs, version_2=True, na_threshold=3.0).predictions[
            "b"
        ]
        == "Paris"
    )
    # An answerable classifier's logit replaces the null odds.
    outputs["answerable_logit"] = np.array([-3.0, 1.0])
    decoded = qa.postprocess_qa(examples, feats, outputs, version_2=True, na_threshold=-2.75)
    assert decoded.null_odds == {"a": -3.0, "b": 1.0} and decoded.predictions["b"] == ""


# ----- metrics ----------------------------------------------------------------------------------


def test_squad_metrics():
    assert metrics.squad_normalize("The  Cat's, an apple!") == "cats apple"
    assert metrics.squad_exact("the cat", "Cat.") == 1
    # gold tokens quick brown fox, predicted quick fox jumps: 2 shared -> P = R = 2/3.
    assert metrics.squad_f1("The quick brown fox", "quick fox jumps") == pytest.approx(2 / 3)
    assert metrics.squad_f1("", "") == 0.0 and metrics.squad_f1("", "", version_2=True) == 1.0
    v1 = metrics.squad_v1_evaluate(
        {"1": ["a cat", "dog"], "2": ["red"], "3": ["x"]}, {"1": "the dog", "2": "red blue"}
    )
    assert v1 == pytest.approx({"exact_match": 100 / 3, "f1": (1 + 2 / 3) / 3 * 100})
    gold = {"1": ["Paris"], "2": [], "3": ["blue sky"]}
    preds = {"1": "Paris", "2": "London", "3": "sky"}
    na = {"1": -1.0, "2": 2.0, "3": 1.0}
    v2 = metrics.squad_v2_evaluate(gold, preds, na, na_prob_thresh=1.5)
    assert v2["exact"] == pytest.approx(200 / 3) and v2["f1"] == pytest.approx(
        (2 + 2 / 3) / 3 * 100
    )
    assert (v2["HasAns_total"], v2["NoAns_exact"]) == (2, 100.0)
    # Best threshold: answering only q1 gives 2/3 exact; threshold at q1's score.
    assert (v2["best_exact"], v2["best_exact_thresh"]) == (pytest.approx(200 / 3), -1.0)
    assert (v2["best_f1"], v2["best_f1_thresh"]) == (pytest.approx((2 + 2 / 3) / 3 * 100), 1.0)
    assert "best_f1" not in metrics.squad_v2_evaluate(gold, preds)


def test_korquad_and_cmrc_metrics():
    assert metrics.korquad_evaluate(
        {"1": ["《한국사》"], "2": ["임수경"]}, {"1": "한국사", "2": "임수경을"}
    ) == pytest.approx({"exact_match": 50.0, "f1": (1 + 6 / 7) / 2 * 100})
    assert metrics.mixed_segmentation("2018年的NBA总决赛，3.5亿", remove_punctuation=True) == [
        "2018",
        "年",
        "的",
        "nba",
        "总",
        "决",
        "赛",
        "3.5",
        "亿",
    ]
    assert metrics.mixed_segmentation("A-B") == ["a", "-", "b"]
    # LCS of 4 segments: P = 4/7, R = 1.
    assert metrics.cmrc_f1(["北京大学"], "北京大学医学部") == pytest.approx(8 / 11)
    assert metrics.cmrc_f1(["北京大学"], "清华") == 0.0
    assert metrics.cmrc_exact(["《北京》"], "北京") == 1.0
    result = metrics.cmrc_evaluate({"1": ["北京大学", "北大"], "2": ["x"]}, {"1": "北大"})
    assert result == pytest.approx(
        {"exact_match": 50.0, "f1": 50.0, "average": 50.0, "total": 2, "skip": 1}
    )


def test_sentence_metrics_against_scipy_sklearn():
    labels, preds = [1, 1, 0, 0], [1, 0, 0, 0]
    assert metrics.mcc(labels, preds)["mcc"] == pytest.approx(100 * 2 / math.sqrt(12))
    assert metrics.f1(labels, preds) == pytest.approx(
        {"precision": 100.0, "recall": 50.0, "f1": 200 / 3}
    )
    assert metrics.accuracy(labels, preds) == {"accuracy": 75.0}
    # classes 0, 1, 2: F1s 1, 1/2, 0 -> macro 1/2.
    assert metrics.f1_macro([0, 1, 1, 2], [0, 1, 2, 1])["f1_macro"] == pytest.approx(50.0)
    # ranks of y with a tie: 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(10 * 9.5).
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    scores = metrics.pearson_spearman(x, y)
    assert scores["spearman"] == pytest.approx(100 * 8 / math.sqrt(95))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    scores = metrics.sentence_scores(["pearson_spearman"], a, b)
    assert scores["spearman"] == pytest.approx(100 * scipy.stats.spearmanr(a, b)[0])
    assert scores["pearson"] == pytest.approx(100 * np.corrcoef(a, b)[0, 1])
    # The reference's STS mse: the mean squared error in the task's units.
    assert metrics.sentence_scores(["mse"], [1.0, 2.0, 5.0], [1.5, 2.0, 3.0]) == {
        "mse": pytest.approx((0.25 + 0.0 + 4.0) / 3)
    }
    c, d = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    assert metrics.sentence_scores(["mcc", "accuracy"], c, d) == pytest.approx(
        {"mcc": 100 * sklearn.metrics.matthews_corrcoef(c, d), "accuracy": 100 * np.mean(c == d)}
    )


@pytest.mark.parametrize(
    "tags, entities",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["I-PER", "I-PER", "O"], [("PER", 0, 1)]),  # I- without B- starts a chunk
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),  # a type change splits
        (["B", "I", "I", "O", "B", "I"], [("_", 0, 2), ("_", 4, 5)]),  # untyped tags
        (
            ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "E-ORG"],
            [("PER", 0, 0), ("LOC", 1, 3), ("ORG", 5, 5)],
        ),  # BIOES; E- after O starts
        (["B-PER", "E-PER", "E-PER", "I-PER"], [("PER", 0, 1), ("PER", 2, 2), ("PER", 3, 3)]),
        (["B-PER", "B-PER", "O", "O"], [("PER", 0, 0), ("PER", 1, 1)]),
    ],
)
def test_get_entities_matches_seqeval(tags, entities):
    assert metrics.get_entities(tags) == entities


def test_entity_f1():
    # seqeval's documented example: MISC misses by one word, PER matches -> 0.5.
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert metrics.entity_f1(y_true, y_pred) == pytest.approx(
        {"precision": 50.0, "recall": 50.0, "f1": 50.0}
    )
    # Same span, wrong type is wrong; 1 of 3 predicted right, 1 of 2 gold found.
    y_true = [["B-PER", "I-PER", "O", "B-LOC"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-LOC"]]
    assert metrics.entity_f1(y_true + [["O"]], y_pred) == pytest.approx(
        {"precision": 100 / 3, "recall": 50.0, "f1": 40.0}
    )


# ----- registry and JSON specs ------------------------------------------------------------------


def test_registry_covers_the_benchmarks():
    names = [
        "cola",
        "sst",
        "mrpc",
        "sts",
        "qqp",
        "mnli",
        "qnli",
        "rte",
        "wnli",
        "squadv1",
        "squadv2",
        "chunk",
        "afqmc",
        "tnews",
        "iflytek",
        "cmnli",
        "wsc",
        "csl",
        "xnli-zh",
        "lcqmc",
        "bq",
        "chnsenticorp",
        "cmrc2018",
        "drcd",
        "nsmc",
        "kornli",
        "korsts",
        "question_pair",
        "hate_speech",
        "naver_ner",
        "korquad",
    ]
    for name in names:
        task = tasks.get_task(name, data_dir="/data")
        assert task.raw_dir == f"/data/finetuning_data/{name}" and task.kind in tasks.KINDS
        assert task.eval_split in task.splits
        if task.kind == "classification":
            assert task.label_list and set(task.metrics) <= set(metrics.SENTENCE_METRICS)
    assert len(tasks.get_task("tnews", raw_dir="x").labels) == 15
    assert tasks.get_task("mnli", raw_dir="/d").path("dev") == "/d/dev_matched.tsv"
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        tasks.get_task("nope", raw_dir="/nonexistent")
    with pytest.raises(ValueError, match="has no split 'dev'"):
        tasks.get_task("nsmc", raw_dir="/d").path("dev")


def write(folder, name, text):
    (folder / name).write_text(text, encoding="utf-8")


def test_glue_and_clue_layouts(tmp_path):
    write(
        tmp_path, "train.tsv", "gj04\t1\t\tOur friends won't buy this.\ngj04\t0\t*\tThey drank.\n"
    )
    write(tmp_path, "test.tsv", "index\tsentence\n0\tBill whistled.\n")
    cola = tasks.get_task("cola", raw_dir=str(tmp_path))
    assert [(ex.text_a, ex.label) for ex in cola.get_examples("train")] == [
        ("Our friends won't buy this.", "1"),
        ("They drank.", "0"),
    ]
    assert [(ex.text_a, ex.label) for ex in cola.get_examples("test")] == [("Bill whistled.", None)]
    write(
        tmp_path,
        "dev.json",
        json.dumps(
            {
                "target": {
                    "span2_index": 7,
                    "span1_index": 0,
                    "span1_text": "小明",
                    "span2_text": "他",
                },
                "idx": 1,
                "label": "true",
                "text": "小明说明天早上他要去",
            },
            ensure_ascii=False,
        )
        + "\n",
    )
    wsc = tasks.get_task("wsc", raw_dir=str(tmp_path)).get_examples("dev")
    assert (wsc[0].text_a, wsc[0].label) == ("_小明_说明天早上[他]要去", "true")
    write(
        tmp_path,
        "dev.tsv",
        "language\tgold_label\t2\t3\t4\t5\tsentence1\tsentence2\n"
        "zh\tneutral\t\t\t\t\t你好\t再见\nen\tneutral\t\t\t\t\thi\tbye\n",
    )
    xnli = tasks.get_task("xnli-zh", raw_dir=str(tmp_path)).get_examples("dev")
    assert [(ex.text_a, ex.text_b, ex.label) for ex in xnli] == [("你好", "再见", "neutral")]


def test_json_spec_task(tmp_path, ko_tokenizer):
    write(
        tmp_path,
        "train.csv",
        'id,q,a,y\n1,"안녕, 하세요",반가워요,pos\n2,잘 가,"또 봐요",neg\n3,"""인용""",응,pos\n',
    )
    write(tmp_path, "dev.csv", "id,q,a,y\n9,뭐,응,neg\n")
    spec = {
        "kind": "classification",
        "format": "csv",
        "header": True,
        "text_a": "q",
        "text_b": "a",
        "label": "y",
        "metric": ["accuracy", "f1"],
        "symmetric": True,
        "files": {"train": "train.csv", "dev": "dev.csv"},
    }
    write(tmp_path, "task.json", json.dumps(spec))
    task = tasks.get_task("mine", raw_dir=str(tmp_path))
    assert (task.label_list, task.metrics, task.source) == (
        ["neg", "pos"],
        ("accuracy", "f1"),
        str(tmp_path / "task.json"),
    )
    train = task.get_examples("train")
    assert [(ex.text_a, ex.text_b, ex.label) for ex in train] == [
        ("안녕, 하세요", "반가워요", "pos"),
        ("잘 가", "또 봐요", "neg"),
        ('"인용"', "응", "pos"),
    ]
    assert len(task.get_examples("train", double_unordered=True)) == 6
    arrays = features.featurize(task, train, ko_tokenizer, 16)
    assert arrays["label_ids"].tolist() == [1, 0, 1]

    jsonl = {
        "kind": "regression",
        "format": "jsonl",
        "text_a": "s",
        "label": "score",
        "files": {"train": "r.jsonl"},
    }
    write(tmp_path, "r.jsonl", '{"s": "가", "score": 2}\n{"s": "나", "score": 4.5}\n')
    task = tasks.get_task("reg", raw_dir=str(tmp_path), spec=jsonl)
    assert task.regression_range == (2.0, 4.5) and task.metrics == ("pearson_spearman",)
    assert task.source == "hparams['reg']"

    write(tmp_path, "ner.tsv", "서울 시청\tLOC-B LOC-I\n")
    ner = tasks.get_task(
        "ner",
        raw_dir=str(tmp_path),
        spec={
            "kind": "tagging",
            "format": "word_tags",
            "tag_format": "suffix",
            "scheme": "BIO",
            "files": {"train": "ner.tsv"},
        },
    )
    assert ner.label_list == ["O", "B-LOC", "I-LOC"]
    assert ner.get_examples("train")[0].tags == ["B-LOC", "I-LOC"]


def test_bad_spec_errors(tmp_path):
    write(
        tmp_path,
        "task.json",
        json.dumps(
            {"kind": "classification", "text_a": 0, "label": 1, "labels": ["a"], "lables": ["a"]}
        ),
    )
    with pytest.raises(ValueError, match=r"Unknown key 'lables' in task spec .*task\.json"):
        tasks.get_task("bad", raw_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"Unknown key 'text_a' in task spec hparams\['q'\]"):
        tasks.get_task("q", raw_dir=str(tmp_path), spec={"kind": "span_qa", "text_a": "x"})
    with pytest.raises(ValueError, match="column names need"):
        tasks.get_task(
            "c",
            raw_dir=str(tmp_path),
            spec={"kind": "classification", "text_a": "q", "label": "y", "labels": ["a"]},
        )
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        tasks.get_task(
            "m",
            raw_dir=str(tmp_path),
            spec={
                "kind": "classification",
                "text_a": 0,
                "label": 1,
                "labels": ["a"],
                "metric": "acc",
            },
        )
    with pytest.raises(ValueError, match='"kind" must be one of'):
        tasks.get_task("k", raw_dir=str(tmp_path), spec={"kind": "ranking"})
