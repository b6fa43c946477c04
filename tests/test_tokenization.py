"""The tokenizer reproduces the reference's golden output exactly on all three paths."""

import json
import random

import pytest
import tensorflow as tf
from conftest import shared_path

from electra_tf import tokenization

GOLDEN_CASES = ["en_uncased", "en_lower_keep_accents", "en_cased", "zh_uncased", "ko_cased"]


def _golden(case):
    cases = json.load(open(shared_path("golden", "tokenization", "cases.json"), encoding="utf-8"))
    spec = cases[case]
    tokenizer = tokenization.FullTokenizer(
        shared_path(spec["vocab"]), spec["do_lower_case"], spec["strip_accents"]
    )
    with open(shared_path("golden", "tokenization", f"{case}.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return tokenizer, rows


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_reference_path(case):
    tokenizer, rows = _golden(case)
    for row in rows:
        tokens = tokenizer.tokenize(row["text"])
        assert tokens == row["tokens"], row["text"]
        assert tokenizer.convert_tokens_to_ids(tokens) == row["ids"]
        assert tokenizer.convert_ids_to_tokens(row["ids"]) == row["tokens"]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_fast_batch_path(case):
    tokenizer, rows = _golden(case)
    got = tokenizer.encode_batch([r["text"] for r in rows])
    bad = [r["text"] for r, ids in zip(rows, got) if ids != r["ids"]]
    assert not bad, f"{len(bad)} of {len(rows)} lines differ, e.g. {bad[:3]}"


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_in_graph_op(case):
    tokenizer, rows = _golden(case)
    ragged = tokenizer.tf_tokenize(tf.constant([r["text"] for r in rows]))
    got = ragged.to_list()
    bad = [r["text"] for r, ids in zip(rows, got) if ids != r["ids"]]
    assert not bad, f"{len(bad)} of {len(rows)} lines differ, e.g. {bad[:3]}"


@pytest.fixture
def small_vocab(tmp_path):
    tokens = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "b",
        "##a",
        "##b",
        "ab",
        "σ",
        "ς",
        "ασ",
        "##σ",
        "##ς",
        "α",
        "i",
        "##i",
        "e",
        "##e",
        ".",
        ",",
        "中",
        "文",
        "x",
        "##x",
        "é",
        "\u0307",
        "##\u0307",
    ]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


def _fuzz_texts(seed, n):
    rng = random.Random(seed)
    alphabet = list("abσΣΑαİIiEeé.,!?'\"-_ ") + [
        "  ",
        "\t",
        "\r\n",
        "\x00",
        "\x01",
        "\x0b",
        "\x1c",
        "\x7f",
        "\x85",
        "\xa0",
        "\u200b",
        "\u2028",
        "\u3000",
        "\ufeff",
        "\ufffd",
        "\u0301",
        "\u0323",
        "中",
        "文",
        "\uf900",
        "한",
        "국",
        "，",
        "。",
        "¿",
        "©",
        "€",
        "😀",
        "\U00020000",
        "\u1b4e",
        "ＡＢ",
        "ﬁ",
        "ǅ",
        "ß",
        "x" * 199,
        "x" * 201,
        "ab" * 120,
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)]


@pytest.mark.parametrize(
    "lower,strip,seed", [(True, None, 11), (True, False, 12), (False, None, 13), (False, True, 14)]
)
def test_fast_path_matches_reference_path_on_hard_random_text(small_vocab, lower, strip, seed):
    tokenizer = tokenization.FullTokenizer(small_vocab, lower, strip)
    texts = _fuzz_texts(seed=seed, n=3000)  # fixed seeds: the same texts in every process
    expected = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]
    got = tokenizer.encode_batch(texts)
    bad = [t for t, e, g in zip(texts, expected, got) if e != g]
    assert not bad, f"{len(bad)} differ, e.g. {bad[:3]!r}"
    graph = tokenizer.tf_tokenize(tf.constant([t for t in texts if "\u1b4e" not in t])).to_list()
    expected_graph = [e for t, e in zip(texts, expected) if "\u1b4e" not in t]
    bad = [i for i, (e, g) in enumerate(zip(expected_graph, graph)) if e != g]
    assert len(bad) <= len(graph) // 100, f"in-graph op differs on {len(bad)} lines"


def test_reference_details(small_vocab):
    tok = tokenization.FullTokenizer(small_vocab, do_lower_case=True)
    assert tok.tokenize("x" * 200) == ["x"] + ["##x"] * 199
    assert tok.tokenize("x" * 201) == ["[UNK]"]
    assert tok.tokenize("a\x00b\u200bab") == [
        "ab",
        "##a",
        "##b",
    ]  # controls and format chars vanish
    assert tok.tokenize("中文ab") == ["中", "文", "ab"]
    assert tok.tokenize("ÉÉ") == ["e", "##e"]
    # Cleaning happens before lower-casing: the sigma is not word-final once \x01 is gone.
    assert tok.tokenize("ΑΣ\x01Α") == tok.tokenize("ΑΣΑ")
    assert tok.encode_batch(["ΑΣ\x01Α", b"ab"]) == [tok.encode_batch(["ΑΣΑ"])[0], [9]]
    assert tok.tokenize(b"a\xffb") == ["ab"]


def test_duplicate_vocab_entries_resolve_like_the_reference(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nab\nab\n##c\n", encoding="utf-8")
    tok = tokenization.FullTokenizer(str(path))
    assert tok.vocab["ab"] == 3
    assert tok.encode_batch(["ab abc"]) == [[3, 3, 4]]
    assert tok.tf_tokenize(tf.constant(["ab abc"])).to_list() == [[3, 3, 4]]


def test_missing_vocab_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Vocabulary file not found"):
        tokenization.FullTokenizer(str(tmp_path / "nope.txt"))


def test_vocab_on_ram_filesystem(ram_dir):
    path = f"{ram_dir}/vocab.txt"
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("[PAD]\n[UNK]\nhello\n##s\n")
    tok = tokenization.FullTokenizer(path)
    assert tok.encode_batch(["Hellos"]) == [[2, 3]]


def test_in_graph_op_in_tf_data_and_saved_model(small_vocab, tmp_path):
    tok = tokenization.FullTokenizer(small_vocab)
    texts = ["ab ba.", "中文 x", "Ασ"]
    expected = tok.encode_batch(texts)
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(tok.tf_tokenize)
    assert next(iter(ds)).to_list() == expected

    module = tokenization.GraphTokenizer(tok)
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert loaded(tf.constant(texts)).to_list() == expected


def test_sentencepiece_model_as_vocabulary(tmp_path):
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "electra", "token", "model", "train"]
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(300)))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=30,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        pad_piece="[PAD]",
        unk_piece="[UNK]",
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2,
    )
    tok = tokenization.FullTokenizer(str(tmp_path / "sp.model"), do_lower_case=True)
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= set(tok.vocab)
    texts = ["Alpha beta GAMMA", "electra model"]
    ids = tok.encode_batch(texts)
    assert ids == [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    assert tok.tf_tokenize(tf.constant(texts)).to_list() == ids
    assert tok.unk_id not in ids[0]
