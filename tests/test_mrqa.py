"""MRQA 2019 tasks (newsqa, naturalqs, triviaqa, searchqa): the reader, features and the official
MRQA evaluation on a hand-written fixture, and one tiny fine-tuning run."""

import gzip
import json
import re
import shutil

import numpy as np
import pytest
from conftest import TINY_ELECTRA, short_finetuning_config

from electra_tf.finetuning import metrics, qa, tasks
from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.tokenization import FullTokenizer

EIFFEL = "The Eiffel Tower was completed in 1889 by Gustave Eiffel 's company ."
# TriviaQA/SearchQA style: documents, titles and paragraphs marked inline; "Paris" twice.
PARIS = "[DOC] [TLE] Paris [PAR] Paris is the capital of France . [PAR] Its mayor is Anne Hidalgo ."


def _detected(context, text, *nth):
    """MRQA detected answer: `text` at its nth occurrences (inclusive char spans)."""
    starts = [m.start() for m in re.finditer(re.escape(text), context)]
    return {
        "text": text,
        "char_spans": [[starts[n], starts[n] + len(text) - 1] for n in nth],
        "token_spans": [[0, 0] for _ in nth],
    }


def _question(qid, question, answers, detected):
    return {"qid": qid, "question": question, "answers": answers, "detected_answers": detected}


RECORDS = [
    {"header": {"dataset": "NewsQA", "split": "train"}},
    {
        "id": "c1",
        "context": EIFFEL,
        "qas": [
            _question(
                "q1", "When was it completed?", ["1889", "in 1889"], [_detected(EIFFEL, "1889", 0)]
            ),
            _question(
                "q2",
                "Who built the tower?",
                ["Gustave Eiffel 's company", "Gustave Eiffel"],
                [_detected(EIFFEL, "Gustave Eiffel", 0)],
            ),
        ],
    },
    {
        "id": "c2",
        "context": PARIS,
        "qas": [
            _question(
                "q3", "Who is the mayor?", ["Anne Hidalgo"], [_detected(PARIS, "Anne Hidalgo", 0)]
            ),
            # Two spans of one detected answer: the reference trains on the first.
            _question("q4", "What is the capital?", ["Paris"], [_detected(PARIS, "Paris", 0, 1)]),
        ],
    },
]
EXPECTED = {
    "q1": (EIFFEL.index("1889"), "1889"),
    "q2": (EIFFEL.index("Gustave"), "Gustave Eiffel"),
    "q3": (PARIS.index("Anne"), "Anne Hidalgo"),
    "q4": (PARIS.index("Paris"), "Paris"),
}


def _jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    """A small uncased WordPiece vocabulary for the fixture: "hidalgo" only as pieces."""
    words = set(
        re.findall(
            r"\w+|[^\w\s]",
            " ".join(
                [EIFFEL, PARIS] + [q["question"] for r in RECORDS[1:] for q in r["qas"]]
            ).lower(),
        )
    )
    words -= {"hidalgo"}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hid", "##al", "##go"] + sorted(words)
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture
def newsqa(tmp_path):
    (tmp_path / "train.jsonl").write_text(_jsonl(RECORDS), encoding="utf-8")
    return tasks.get_task("newsqa", raw_dir=str(tmp_path))


def test_builtin_mrqa_tasks_and_reader(newsqa):
    for name in ("newsqa", "naturalqs", "triviaqa", "searchqa"):
        task = tasks.get_task(name, data_dir="/data")
        assert (task.kind, task.format, task.metrics) == ("span_qa", "mrqa", ("mrqa",))
        assert task.path("dev") == f"/data/finetuning_data/{name}/dev.jsonl"
        assert task.eval_split == "dev" and not task.version_2
    examples = newsqa.get_examples("train")
    assert [ex.qas_id for ex in examples] == ["q1", "q2", "q3", "q4"]  # header line skipped
    assert examples[0].question == "When was it completed?" and examples[0].doc.context == EIFFEL
    for ex in examples:
        start, text = EXPECTED[ex.qas_id]
        assert (ex.start_char, ex.answer_text) == (start, text)
        assert ex.doc.context[start : start + len(text)] == text
    # Gold for scoring: every "answers" string, not the detected texts.
    assert examples[1].answers == ["Gustave Eiffel 's company", "Gustave Eiffel"]
    # [PAR]/[DOC]/[TLE] are plain words, as in the reference.
    assert examples[2].doc.words[:4] == ["[DOC]", "[TLE]", "Paris", "[PAR]"]


def test_features_point_at_the_answers(newsqa, tokenizer):
    examples = newsqa.get_examples("train")
    feats = qa.qa_features(examples, tokenizer, max_seq_length=48, max_query_length=8)
    assert len(feats.windows) == 4  # every context fits one window
    for f, window in enumerate(feats.windows):
        ex = examples[window.example_index]
        start, end = feats.arrays["start_positions"][f], feats.arrays["end_positions"][f]
        assert 0 < start <= end
        ids = feats.arrays["input_ids"][f][start : end + 1]
        assert tokenizer.convert_ids_to_tokens([int(i) for i in ids]) == tokenizer.tokenize(
            ex.answer_text
        )
        doc = feats.documents[window.example_index]
        first = start - window.offset + window.doc_start
        assert doc.char_spans[first][0] == ex.start_char  # q4: the first "Paris", in the title
    assert tokenizer.tokenize(PARIS)[:4] == ["[", "doc", "]", "["]
    assert tokenizer.tokenize("Hidalgo") == ["hid", "##al", "##go"]
    # Decoding the labeled spans gives back the detected answers, keyed by qid.
    start = np.full(feats.arrays["input_ids"].shape, -1e4)
    end = start.copy()
    for f, (s, e) in enumerate(zip(feats.arrays["start_positions"], feats.arrays["end_positions"])):
        start[f, s] = end[f, e] = 0.0
    decoded = qa.postprocess_qa(examples, feats, {"start_logits": start, "end_logits": end})
    assert decoded.predictions == {qid: text for qid, (_, text) in EXPECTED.items()}


def test_mrqa_official_evaluation():
    gold = {"q1": ["1889", "in 1889"], "q2": ["Gustave Eiffel 's company", "Gustave Eiffel"]}
    gold["q3"] = ["Anne Hidalgo"]
    # q1 matches the second gold answer; q2 overlaps: 2 of 3 predicted tokens, 2 of the first
    # answer's 4 (gustave eiffel s company): F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7, better than
    # the second answer's 2/5. q3 has no prediction: left out of the totals, not scored 0.
    preds = {"q1": "In 1889.", "q2": "Eiffel company ltd"}
    scores = metrics.qa_scores("mrqa", gold, preds)
    assert scores == pytest.approx({"exact_match": 50.0, "f1": 100.0 * (1 + 4 / 7) / 2})
    assert metrics.squad_v1_evaluate(gold, preds)["exact_match"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="none of the gold questions has a prediction"):
        metrics.mrqa_evaluate(gold, {"x": "1889"})


def test_reader_errors_name_file_and_line(tmp_path):
    task = tasks.get_task("triviaqa", raw_dir=str(tmp_path))
    train = tmp_path / "train.jsonl"
    cases = [
        ('{"context": "a b", "qas": [}\n', "line 2: not valid JSON"),
        ('{"context": "a b"}\n', 'line 2: no "context" string and "qas" list'),
        (
            '{"context": "a b", "qas": [{"qid": "x", "question": "q?", "answers": []}]}\n',
            r'line 2: qas\[0\] needs a "qid" and "question"',
        ),
        (
            '{"context": "a b", "qas": [{"qid": "x", "question": "q?", "answers": ["a"]}]}\n',
            "line 2: question 'x' needs detected_answers",
        ),
    ]
    for line, message in cases:
        train.write_text(_jsonl(RECORDS[:1]) + line, encoding="utf-8")
        with pytest.raises(ValueError, match=f"train.jsonl {message}"):
            task.get_examples("train")
    # Outside training detected answers are optional (the gold is "answers").
    (tmp_path / "dev.jsonl").write_text(line, encoding="utf-8")
    (example,) = task.get_examples("dev")
    assert example.answers == ["a"] and example.start_word is None
    # The shared task publishes .jsonl.gz; the reference reads plain .jsonl.
    train.unlink()
    with gzip.open(tmp_path / "train.jsonl.gz", "wt") as f:
        f.write(_jsonl(RECORDS))
    with pytest.raises(FileNotFoundError, match="train.jsonl.gz is there: gunzip it"):
        task.get_examples("train")
    spec = {"kind": "span_qa", "format": "mrqa", "files": {"dev": "dev.jsonl"}}
    assert tasks.task_from_spec("bioasq", spec, str(tmp_path), "s").metrics == ("mrqa",)
    with pytest.raises(ValueError, match='"version_2" needs the "squad" format'):
        tasks.task_from_spec("bioasq", dict(spec, version_2=True), str(tmp_path), "s")


def test_finetuning_writes_the_mrqa_scores(tmp_path, vocab_file):
    data_dir = tmp_path
    shutil.copy(vocab_file, data_dir / "vocab.txt")
    raw = data_dir / "finetuning_data" / "searchqa"
    raw.mkdir(parents=True)
    (raw / "train.jsonl").write_text(_jsonl(RECORDS * 2), encoding="utf-8")
    (raw / "dev.jsonl").write_text(_jsonl(RECORDS), encoding="utf-8")
    vocab_size = len((data_dir / "vocab.txt").read_text(encoding="utf-8").split())
    config = short_finetuning_config(
        "random",
        str(data_dir),
        batch_size=4,
        task_names=["searchqa"],
        init_checkpoint=None,
        model_hparam_overrides=dict(TINY_ELECTRA, num_hidden_layers=1),
        embedding_size=16,
        vocab_size=vocab_size,
        max_seq_length=48,
        max_query_length=8,
        beam_size=4,
        iterations_per_loop=2,
    )
    assert config.num_train_epochs == 1.0 and config.max_seq_length == 48
    (scores,) = runner_lib.run_finetuning(config)
    results = data_dir / "models" / "random" / "results"
    preds = json.loads((results / "searchqa_qa" / "searchqa_preds.json").read_text())
    assert set(preds) == set(EXPECTED)
    gold = {q["qid"]: q["answers"] for r in RECORDS[1:] for q in r["qas"]}
    expected = metrics.mrqa_evaluate(gold, preds)
    assert {k: scores["searchqa"][k] for k in expected} == pytest.approx(expected)
    saved = json.loads((results / "searchqa_results.json").read_text())
    assert saved["trials"][0]["searchqa"]["f1"] == pytest.approx(expected["f1"])
    # Span QA defaults come from the task's kind: naturalqs too (the reference's name rule misses it).
    defaults = FinetuningConfig("m", str(tmp_path / "none"), task_names=["naturalqs"])
    assert (defaults.max_seq_length, defaults.num_train_epochs) == (512, 2.0)
