"""Vocabulary learning (electra_tf.vocab): layout, alphabet coverage, determinism, streaming,
gfile paths, SentencePiece, and [UNK] rates on held-out real English and Chinese text."""

import collections
import json
import random

import pytest
import tensorflow as tf
from conftest import shared_path

from electra_tf import tokenization, vocab

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _write(path, text):
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(text.encode("utf-8"))


def _read(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().decode("utf-8")


def _synthetic_lines(n, seed=0):
    """Deterministic text over a small made-up language, Zipf-like word frequencies."""
    rng = random.Random(seed)
    syllables = [
        "ka",
        "to",
        "ri",
        "men",
        "sa",
        "lo",
        "ne",
        "pu",
        "ti",
        "vo",
        "el",
        "an",
        "qu",
        "zé",
    ]
    words = sorted(
        {"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(400)}
    )
    weights = [1.0 / (i + 1) for i in range(len(words))]
    lines = []
    for _ in range(n):
        line = " ".join(rng.choices(words, weights, k=rng.randint(3, 12)))
        lines.append(line.capitalize() + rng.choice([".", "!", "?", ", 42."]))
    return lines


def _shared_lines(name, start, stop):
    path = shared_path("corpora", name)
    return list(vocab.iter_corpus_lines([path], start, stop))


# ----- reading ------------------------------------------------------------------------------------
def test_iter_lines_streams_in_chunks(ram_dir, monkeypatch):
    text = "α line\r\nsecond ☃ line\n\n中文行 😀\nlast line without newline"
    path = f"{ram_dir}/c.txt"
    _write(path, text)
    reads = []
    real_gfile = tf.io.gfile.GFile

    class SpyGFile(real_gfile):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    monkeypatch.setattr(tf.io.gfile, "GFile", SpyGFile)
    # 5-byte chunks split the multi-byte characters; the incremental decoder rejoins them.
    assert list(vocab.iter_lines(path, chunk_size=5)) == [
        "α line",
        "second ☃ line",
        "",
        "中文行 😀",
        "last line without newline",
    ]
    assert reads and all(n == 5 for n in reads)  # never one read of the whole file
    # Lazy: the first line costs the first chunks only.
    reads.clear()
    assert next(vocab.iter_lines(path, chunk_size=5)) == "α line"
    assert len(reads) <= 2


def test_iter_corpus_lines_many_chunks_and_files(ram_dir):
    lines = _synthetic_lines(3000)
    _write(f"{ram_dir}/corpus/b.txt", "\n".join(lines[1000:]) + "\n")
    _write(f"{ram_dir}/corpus/a.txt", "\n".join(lines[:1000]) + "\n")
    _write(f"{ram_dir}/corpus/.hidden", "not corpus\n")
    files = vocab.list_corpus_files(f"{ram_dir}/corpus")
    assert files == [f"{ram_dir}/corpus/a.txt", f"{ram_dir}/corpus/b.txt"]
    assert vocab.list_corpus_files(f"{ram_dir}/corpus/*.txt") == files
    assert list(vocab.iter_corpus_lines(files)) == lines
    assert list(vocab.iter_corpus_lines(files, 990, 1010)) == lines[990:1010]
    assert vocab.count_lines(files) == 3000
    assert [line for f in files for line in vocab.iter_lines(f, chunk_size=333)] == lines
    with pytest.raises(FileNotFoundError):
        vocab.list_corpus_files(f"{ram_dir}/missing.txt")


# ----- pre-tokenization ---------------------------------------------------------------------------
HARD_TEXTS = [
    "Héllo, WORLD! Ünïcödé naïve café",
    "中文字符测试abc中文 mixed",
    "\x00\ufffd ctrl\x07 chars\x1b[33m",
    "İstanbul ΣΑΣ ǅemal",
    "a\u2028b\u00a0c\u3000d",
    "x" * 250 + " y",
    "emoji 😀👍🏽 ok",
    "full-width ＡＢＣ１２３！",
    "\u0301leading mark",
    "tag \U000e0080 unassigned",
    "don't-stop (now)",
    "한국어 문장입니다.",
    "",
]


def _check_pretokenize(lower, strip, texts):
    tok = vocab.make_basic_tokenizer(lower, strip)
    fast = vocab.pretokenize_batch(tok, texts)
    bad = [t for t, words in zip(texts, fast) if words != tok.basic_tokenize(t)]
    assert not bad, bad[:3]


@pytest.mark.parametrize("lower,strip", [(True, None), (True, False), (False, False)])
def test_pretokenize_matches_basic_tokenize(lower, strip):
    _check_pretokenize(lower, strip, list(HARD_TEXTS))


@pytest.mark.parametrize("lower,strip", [(True, None), (False, False)])
def test_pretokenize_matches_basic_tokenize_on_real_corpora(lower, strip):
    texts = _shared_lines("en_fortunes.txt", 0, 1500) + _shared_lines("zh_fortunes.txt", 0, 1500)
    _check_pretokenize(lower, strip, texts)


# ----- layout -----------------------------------------------------------------------------------
def test_layout_special_tokens_unused_and_alphabet():
    counts = collections.Counter({"hello": 50, "help": 30, "world": 20, ",": 40, "中": 10, "x": 1})
    tokens = vocab.vocab_from_word_counts(counts, vocab_size=60, limit_alphabet=100, num_unused=3)
    assert tokens[:8] == [
        "[PAD]",
        "[unused0]",
        "[unused1]",
        "[unused2]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert len(tokens) <= 60 and len(set(tokens)) == len(tokens)
    for ch in "helowrdx":
        assert ch in tokens and "##" + ch in tokens
    # Punctuation and CJK characters are always words of their own: no "##" form needed.
    for ch in ",中":
        assert ch in tokens and "##" + ch not in tokens
    assert tokens[-3:] == ["hello", "help", "world"]  # learned, most frequent first
    no_unused = vocab.vocab_from_word_counts(counts, vocab_size=60, limit_alphabet=100)
    assert no_unused[:5] == SPECIALS
    with pytest.raises(ValueError, match="vocab_size"):
        vocab.vocab_from_word_counts(counts, vocab_size=10, limit_alphabet=100)


def test_limit_alphabet_keeps_most_frequent_characters(ram_dir):
    counts = collections.Counter({"aab": 100, "ba": 50, "abc": 20, "zzz": 2, "q": 1})
    tokens = vocab.vocab_from_word_counts(counts, vocab_size=40, limit_alphabet=3)
    assert vocab.select_alphabet(counts, 3) == ["a", "b", "c"]
    singles = [t for t in tokens[5:] if len(t) == 1]
    assert singles == ["a", "b", "c"]
    path = f"{ram_dir}/vocab.txt"
    vocab.write_lines_atomic(path, tokens)
    tok = tokenization.FullTokenizer(path)
    assert "[UNK]" not in tok.tokenize("cab bcaab abba")
    assert tok.tokenize("zzz aq") == ["[UNK]", "[UNK]"]


# ----- learning from files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_corpus():
    path = f"ram://test-vocab-{random.Random().getrandbits(64):x}/corpus.txt"
    lines = _synthetic_lines(3000)
    _write(path, "\n".join(lines) + "\n")
    return path, lines


def test_learn_on_ram_is_deterministic_and_atomic(synthetic_corpus, ram_dir):
    corpus, lines = synthetic_corpus
    out1, out2 = f"{ram_dir}/a/vocab.txt", f"{ram_dir}/b/vocab.txt"
    tokens = vocab.learn_wordpiece_vocab(corpus, out1, vocab_size=300, num_unused=2)
    vocab.learn_wordpiece_vocab([corpus], out2, vocab_size=300, num_unused=2)
    assert _read(out1) == _read(out2)
    assert _read(out1) == "".join(t + "\n" for t in tokens)
    assert tf.io.gfile.listdir(f"{ram_dir}/a") == ["vocab.txt"]  # no temporary file left
    assert 0.9 * 300 <= len(tokens) <= 300 and len(set(tokens)) == len(tokens)
    assert tokens[:7] == ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # The same counts in another order give the same vocabulary.
    counts = vocab.count_words(corpus)
    shuffled = list(counts.items())
    random.Random(1).shuffle(shuffled)
    assert vocab.vocab_from_word_counts(dict(shuffled), 300, num_unused=2) == tokens
    # Round trip: the tokenizer loads it; lines in the alphabet never give [UNK].
    tok = tokenization.FullTokenizer(out1)
    assert [tok.vocab[t] for t in SPECIALS] == [0, 3, 4, 5, 6]
    assert vocab.unk_rate(tok, lines) == 0.0
    assert len(tok.tokenize("kato")) <= 2


def test_count_words_prunes_to_most_frequent(synthetic_corpus):
    corpus, _ = synthetic_corpus
    full = vocab.count_words(corpus)
    pruned = vocab.count_words(corpus, max_words=20)
    assert len(pruned) == 20
    top = sorted(full.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert all(pruned[w] == c for w, c in top)
    assert sum(full[w] for w in vocab.count_words(corpus, max_lines=10)) > 0


def test_unk_rate(ram_dir):
    path = f"{ram_dir}/vocab.txt"
    vocab.write_lines_atomic(path, ["[PAD]", "[UNK]", "a", "##b", "c"])
    tok = tokenization.FullTokenizer(path)
    assert vocab.unk_rate(tok, ["ab c", "d"]) == pytest.approx(1 / 4)  # a ##b c [UNK]
    assert vocab.unk_rate(tok, []) == 0.0


def test_command_line_heldout(synthetic_corpus, ram_dir, capsys):
    corpus, _ = synthetic_corpus
    out = f"{ram_dir}/cli/vocab.txt"
    assert (
        vocab.COMMAND(
            [
                "electra-learn-vocab",
                f"--corpus_files={corpus}",
                f"--output_file={out}",
                "--vocab_size=250",
                "--no-lower-case",
                "--heldout_fraction=0.2",
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    fields = dict(kv.split("=") for kv in report.split())
    assert fields["lines"] == "600" and float(fields["heldout_unk_rate"]) < 0.01
    tokens = _read(out).split("\n")[:-1]
    assert len(tokens) <= 250 and tokens[:5] == SPECIALS
    assert "K" in tokens  # cased
    assert vocab.COMMAND(["electra-learn-vocab", f"--corpus_files={corpus}"]) == 2


# ----- SentencePiece ------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_model_loads_with_special_tokens(model_type, ram_dir):
    lines = _shared_lines("en_fortunes.txt", 0, 2500)
    _write(f"{ram_dir}/corpus.txt", "\n".join(lines[:2000]) + "\n")
    model = vocab.learn_sentencepiece_vocab(
        f"{ram_dir}/corpus.txt", f"{ram_dir}/sp/m", vocab_size=600, model_type=model_type
    )
    assert model == f"{ram_dir}/sp/m.model" and tf.io.gfile.exists(f"{ram_dir}/sp/m.vocab")
    tok = tokenization.FullTokenizer(model)
    assert tok.is_sentencepiece and tok.vocab_size == 600
    assert [tok.vocab[t] for t in SPECIALS] == [0, 1, 2, 3, 4] and tok.unk_id == 1
    assert _read(f"{ram_dir}/sp/m.vocab").split("\n")[4].split("\t")[0] == "[MASK]"
    assert vocab.unk_rate(tok, lines[2000:]) < 0.005


# ----- real corpora: [UNK] rates on held-out lines ------------------------------------------------
@pytest.fixture(scope="module")
def english_vocab():
    corpus = shared_path("corpora", "en_fortunes.txt")
    out = f"ram://test-vocab-{random.Random().getrandbits(64):x}/en_vocab.txt"
    tokens = vocab.learn_wordpiece_vocab(corpus, out, vocab_size=2000, max_lines=4000)
    return corpus, out, tokens


def test_english_heldout_unk_rate(english_vocab):
    corpus, out, tokens = english_vocab
    assert 1900 <= len(tokens) <= 2000 and tokens[:5] == SPECIALS
    tok = tokenization.FullTokenizer(out)
    alphabet = [t for t in tokens[5:] if len(t) == 1]
    assert all("##" + ch in tok.vocab for ch in alphabet if not vocab.is_isolated_char(ch))
    # Words made of any alphabet characters tokenize without [UNK].
    rng = random.Random(0)
    letters = [ch for ch in alphabet if not vocab.is_isolated_char(ch)]
    words = ["".join(rng.choices(letters, k=rng.randint(1, 12))) for _ in range(300)]
    assert vocab.unk_rate(tok, [" ".join(words)]) == 0.0
    assert tok.tokenize("the") == ["the"]
    # Measured: 0 [UNK] in 25k held-out tokens (lines 4000-6000) with this 2000-token vocabulary.
    heldout = list(vocab.iter_corpus_lines([corpus], 4000, 6000))
    assert vocab.unk_rate(tok, heldout) < 0.001


def test_chinese_heldout_unk_rate_and_single_character_tokens(ram_dir):
    corpus = shared_path("corpora", "zh_fortunes.txt")
    out = f"{ram_dir}/zh_vocab.txt"
    tokens = vocab.learn_wordpiece_vocab(
        corpus, out, vocab_size=3000, limit_alphabet=2500, max_lines=6000
    )

    def cjk(ch):
        return tokenization.is_cjk(ord(ch))  # pylint: disable=unnecessary-lambda-assignment

    # CJK characters are words of their own for the tokenizer: present whole, never as "##" pieces
    # or inside longer pieces (the budget goes to Latin-script pieces instead).
    assert sum(1 for t in tokens if len(t) == 1 and cjk(t)) > 1000  # all 1081 seen
    assert not [t for t in tokens if len(t) > 1 and any(cjk(ch) for ch in t)]
    tok = tokenization.FullTokenizer(out)
    heldout = list(vocab.iter_corpus_lines([corpus], 6000, 8000))
    pieces = [p for line in heldout[:200] for p in tok.tokenize(line)]
    assert [p for p in pieces if any(cjk(ch) for ch in p) and len(p) > 1] == []
    # Measured: 0.24% [UNK] on lines 6000-8000 (characters never seen in the first 6000 lines).
    assert vocab.unk_rate(tok, heldout) < 0.01


def test_korean_words_of_the_alphabet_never_become_unk():
    """Korean golden-case text as the corpus, all characters kept: [UNK] only for >200-char words."""
    cases = shared_path("golden", "tokenization", "cases.json")
    spec = json.loads(_read(cases))["ko_cased"]
    tok = vocab.make_basic_tokenizer(spec["do_lower_case"], spec["strip_accents"])
    path = shared_path("golden", "tokenization", "ko_cased.jsonl")
    texts = [json.loads(line)["text"] for line in _read(path).split("\n") if line][:150]
    counts = collections.Counter(w for words in vocab.pretokenize_batch(tok, texts) for w in words)
    # slack_ratio=1: the first count threshold that fits is taken (one or two learner runs).
    tokens = vocab.vocab_from_word_counts(
        counts, vocab_size=2500, limit_alphabet=5000, slack_ratio=1.0
    )
    assert len(tokens) <= 2500 and all(ch in tokens for w in counts for ch in w)
    path = f"ram://test-vocab-{random.Random().getrandbits(64):x}/ko.txt"
    vocab.write_lines_atomic(path, tokens)
    ko = tokenization.FullTokenizer(path, spec["do_lower_case"], spec["strip_accents"])
    long_words = sum(1 for w in counts.elements() if len(w) > tokenization.MAX_INPUT_CHARS_PER_WORD)
    unk = sum(i == ko.unk_id for ids in ko.encode_batch(texts) for i in ids)
    assert unk == long_words
