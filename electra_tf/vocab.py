"""Learns a WordPiece vocab.txt (or a SentencePiece model) from raw text, for pre-training.

WordPiece: the corpus is streamed line by line through `tf.io.gfile` (local, gs://, ram:// paths),
split into words exactly as `tokenization.FullTokenizer` will split it (the reference
BasicTokenizer: cleaning, CJK characters as single-character words, lower-casing / accent
stripping per the switches, punctuation split), and only the word counts are kept (optionally
pruned to the most frequent words, so a corpus larger than memory works). The pieces are learned
by tensorflow-text's WordPiece learner (`tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib`),
the one behind `bert_vocab_from_dataset`. The vocab.txt is laid out like BERT's:

  [PAD], [unused0] .. [unused{N-1}], [UNK], [CLS], [SEP], [MASK], alphabet, ##alphabet, pieces

Every character of the kept alphabet (the `limit_alphabet` most frequent ones) is present as a
word-initial token and, unless the tokenizer always splits it off as a word of its own
(punctuation and CJK characters), as a `##` continuation, so a word made only of alphabet
characters never becomes [UNK]. The output is deterministic for the same input and settings.

Command line (`electra-learn-vocab`):
  electra-learn-vocab --corpus_dir=CORPUS --output_file=vocab.txt --vocab_size=16000 \
      --heldout_fraction=0.01
"""

import codecs
import collections
import heapq
import io
import itertools
import re
import sys
import time
import unicodedata
import uuid

import tensorflow as tf
from absl import flags, logging

from electra_tf import cli, fileio, tokenization

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
JOINER = "##"
MODEL_TYPES = ("wordpiece", "unigram", "bpe")
_READ_CHUNK = 1 << 20
_BATCH_LINES = 4096


# ----- reading the corpus -------------------------------------------------------------------------
def _split_csv(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [v for v in value if v]


def list_corpus_files(corpus):
    """Corpus spec -> sorted list of text files.

    `corpus` is a path or a list of paths (a comma-separated string works too); each is a file, a
    directory (its files, non-recursive, hidden files skipped) or a glob pattern. Binary files
    (`fileio.looks_binary`, the dataset builder's rule: compressed files, random bytes) are skipped
    with a warning naming each one.
    """
    files = []
    for spec in _split_csv(corpus):
        if tf.io.gfile.isdir(spec):
            base = spec.rstrip("/")
            found = [
                f"{base}/{name}"
                for name in sorted(tf.io.gfile.listdir(spec))
                if not name.startswith(".")
            ]
            files.extend(f for f in found if not tf.io.gfile.isdir(f))
        elif any(ch in spec for ch in "*?["):
            files.extend(f for f in sorted(tf.io.gfile.glob(spec)) if not tf.io.gfile.isdir(f))
        elif tf.io.gfile.exists(spec):
            files.append(spec)
        else:
            raise FileNotFoundError(f"Corpus path not found: {spec}")
    if not files:
        raise FileNotFoundError(f"No corpus files in {corpus!r}")
    binary = [f for f in files if fileio.is_binary_file(f)]
    for path in binary:
        logging.warning("Skipping %s: it looks binary (NUL bytes), not text.", path)
    if binary and len(binary) == len(files):
        raise ValueError(
            f"No text in the corpus {corpus!r}: every file looks binary (NUL bytes), e.g. "
            f"{binary[0]}. Decompress or convert it to UTF-8 text first."
        )
    if binary:
        logging.warning(
            "Skipped %d binary file(s) of %d; learning from the other %d.",
            len(binary),
            len(files),
            len(files) - len(binary),
        )
        skipped = set(binary)
        files = [f for f in files if f not in skipped]
    return files


def iter_lines(path, chunk_size=_READ_CHUNK):
    """Yields the lines of one file (without the line break), reading `chunk_size` bytes at a time.

    UTF-8 is decoded incrementally (invalid bytes are dropped, as the tokenizer does); lines end at
    "\\n" (a trailing "\\r" is removed).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    pending = ""
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            chunk = f.read(chunk_size)
            final = not chunk
            text = pending + decoder.decode(chunk or b"", final=final)
            lines = text.split("\n")
            pending = lines.pop()
            for line in lines:
                yield line[:-1] if line.endswith("\r") else line
            if final:
                break
    if pending:
        yield pending[:-1] if pending.endswith("\r") else pending


def iter_corpus_lines(files, start=0, stop=None):
    """Lines of all `files` in order, lines [start, stop) of the concatenation."""
    lines = itertools.chain.from_iterable(iter_lines(f) for f in files)
    return itertools.islice(lines, start, stop)


def count_lines(files):
    """Number of lines `iter_corpus_lines` yields, counted by streaming."""
    return sum(1 for _ in iter_corpus_lines(files))


def _batches(iterable, size=_BATCH_LINES):
    it = iter(iterable)
    while True:
        batch = list(itertools.islice(it, size))
        if not batch:
            return
        yield batch


# ----- pre-tokenization (the reference BasicTokenizer) --------------------------------------------
def make_basic_tokenizer(do_lower_case=True, strip_accents=None):
    """A `FullTokenizer` used only for its BasicTokenizer part (built on a throwaway vocab)."""
    path = f"ram://electra_tf_vocab_tmp/{uuid.uuid4().hex}/vocab.txt"
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(f"{PAD}\n{UNK}\n")
    try:
        return tokenization.FullTokenizer(
            path, do_lower_case=do_lower_case, strip_accents=strip_accents
        )
    finally:
        tf.io.gfile.remove(path)


def _word_breaker_class():
    """Regex class body of the characters the reference splits off as one-character words."""
    cps = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] == "P"}
    for lo, hi in tokenization.ASCII_PUNCT_RANGES + tokenization.CJK_RANGES:
        cps.update(range(lo, hi + 1))
    return tokenization._ranges_to_class(sorted(cps))  # pylint: disable=protected-access


_WORD_RE = None


def _word_re():
    global _WORD_RE
    if _WORD_RE is None:
        cls = _word_breaker_class()
        # A breaker on its own, or a run of anything but whitespace (str.split's) and breakers.
        _WORD_RE = re.compile(f"[{cls}]|[^\\s{cls}]+")
    return _WORD_RE


def is_isolated_char(ch):
    """Whether the tokenizer always makes `ch` a word of its own (punctuation, CJK), never a `##`."""
    return tokenization.is_punctuation(ch) or tokenization.is_cjk(ord(ch))


def pretokenize_batch(tokenizer, lines):
    """Lines -> lists of words, identical to `tokenizer.basic_tokenize` on each line, but fast.

    The normalisation runs as `FullTokenizer.normalize_batch` (C-level passes); the split is one
    regex. Lines that only the exact Python path handles go through `basic_tokenize`.
    """
    word_re = _word_re()
    out = []
    for line, norm in zip(lines, tokenizer.normalize_batch(lines)):
        if norm is None:
            out.append(tokenizer.basic_tokenize(line))
        else:
            out.append(word_re.findall(norm))
    return out


def _top_items(counts, n):
    """The n most frequent (item, count) pairs, ties by item: deterministic."""
    return heapq.nsmallest(n, counts.items(), key=lambda kv: (-kv[1], kv[0]))


def count_words(
    corpus, do_lower_case=True, strip_accents=None, max_lines=None, max_words=None, log_every_s=10.0
):
    """Streams the corpus and counts its words as the tokenizer splits them.

    Args:
      corpus: file(s) / directory / glob (see `list_corpus_files`), or a list of files.
      do_lower_case, strip_accents: the tokenizer's switches.
      max_lines: read at most this many lines (of all files together).
      max_words: keep only about this many distinct words: whenever the table holds twice as many,
        it is cut back to the most frequent `max_words` (bounded memory for any corpus size; counts
        of words that were cut and come back later are approximate).
      log_every_s: progress log interval.

    Returns:
      collections.Counter {word: count}.
    """
    files = list_corpus_files(corpus)
    tokenizer = make_basic_tokenizer(do_lower_case, strip_accents)
    counts = collections.Counter()
    start = last_log = time.time()
    n_lines = n_chars = 0
    for batch in _batches(iter_corpus_lines(files, 0, max_lines)):
        for words in pretokenize_batch(tokenizer, batch):
            counts.update(words)
        n_lines += len(batch)
        n_chars += sum(map(len, batch))
        if max_words and len(counts) > 2 * max_words:
            counts = collections.Counter(dict(_top_items(counts, max_words)))
        now = time.time()
        if now - last_log >= log_every_s:
            last_log = now
            logging.info(
                "Counted %d lines (%.0f lines/s, %.2f M chars/s), %d distinct words",
                n_lines,
                n_lines / (now - start),
                n_chars / (now - start) / 1e6,
                len(counts),
            )
    if max_words and len(counts) > max_words:
        counts = collections.Counter(dict(_top_items(counts, max_words)))
    elapsed = max(time.time() - start, 1e-9)
    logging.info(
        "Counted %d lines, %d chars in %.1f s (%.0f lines/s): %d distinct words, %d in all",
        n_lines,
        n_chars,
        elapsed,
        n_lines / elapsed,
        len(counts),
        sum(counts.values()),
    )
    return counts


# ----- WordPiece ----------------------------------------------------------------------------------
def _learner_lib():
    try:
        from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib
    except ImportError as e:  # pragma: no cover - depends on the installed tensorflow-text
        raise ImportError(
            "tensorflow-text's WordPiece learner (tensorflow_text.tools.wordpiece_vocab)"
            " is needed to learn a WordPiece vocabulary"
        ) from e
    return lib


def learn_pieces(
    word_counts,
    target_size,
    max_token_length=50,
    max_input_words=5_000_000,
    max_unique_chars=1000,
    num_iterations=4,
    lower_thresh=1,
    slack_ratio=0.05,
):
    """tensorflow-text's WordPiece learner with a faster search for the count threshold.

    `wordpiece_tokenizer_learner_lib.learn` bisects the threshold linearly between the word counts'
    extremes; every try costs a full learning run, and the vocabulary size is close to a power law
    of the threshold, so this bisects it geometrically instead (about half the tries). Everything
    else (input filtering, the per-threshold learning `learn_with_thresh`, the output order: the
    word's characters, then tokens by count) is the library's.

    Args:
      word_counts: (word, count) pairs, in a deterministic order.
      target_size: the learner's vocabulary size target (characters and "##" characters included).
      others: as in `wordpiece_tokenizer_learner_lib.learn`.

    Returns:
      the learned token list: the first found within `slack_ratio` below `target_size`, else the one
      of the largest threshold that gives more than `target_size` tokens (the caller keeps the most
      frequent), else (a small corpus) the one of the lowest threshold.
    """
    lib = _learner_lib()
    params = lib.Params(
        upper_thresh=None,
        lower_thresh=lower_thresh,
        num_iterations=num_iterations,
        max_input_tokens=-1 if max_input_words is None else max_input_words,
        max_token_length=max_token_length,
        max_unique_chars=max_unique_chars,
        vocab_size=target_size,
        slack_ratio=slack_ratio,
        include_joiner_token=True,
        joiner=JOINER,
        reserved_tokens=[],
    )
    all_counts = lib.get_input_words(word_counts, [], max_token_length)
    allowed_chars = lib.get_allowed_chars(all_counts, max_unique_chars)
    words = lib.filter_input_words(all_counts, allowed_chars, params.max_input_tokens)
    if not words:
        return []
    tried = {}

    def learn_at(thresh):
        if thresh not in tried:
            start = time.time()
            tried[thresh] = lib.learn_with_thresh(words, thresh, params)
            logging.info(
                "WordPiece threshold %d: %d tokens (target %d), %.1f s",
                thresh,
                len(tried[thresh]),
                target_size,
                time.time() - start,
            )
        return tried[thresh]

    # Invariant: thresholds <= too_low give too many tokens, >= low_enough few enough (the size
    # decreases with the threshold); the bounds start as guesses that are not tried.
    max_count = max(c for _, c in words)
    too_low, low_enough = max(1, lower_thresh) - 1, max_count + 1
    while low_enough - too_low > 1:
        thresh = int(round((max(too_low, 0.5) * low_enough) ** 0.5))
        thresh = min(max(thresh, too_low + 1), low_enough - 1)
        size = len(learn_at(thresh))
        if size <= target_size:
            low_enough = thresh
            if size >= target_size * (1 - slack_ratio):
                break
        else:
            too_low = thresh
    if low_enough in tried and (
        too_low not in tried or len(tried[low_enough]) >= target_size * (1 - slack_ratio)
    ):
        return tried[low_enough]
    # The next lower threshold gives too many tokens (or even the largest count does): its tokens,
    # most frequent first, which the caller cuts to the size.
    return learn_at(min(max(too_low, 1), max_count))


def special_tokens(num_unused):
    return [PAD] + [f"[unused{i}]" for i in range(num_unused)] + [UNK, CLS, SEP, MASK]


def select_alphabet(word_counts, limit_alphabet):
    """The `limit_alphabet` most frequent characters (weighted by word count; ties by character)."""
    char_counts = collections.Counter()
    for word, count in word_counts.items():
        for ch in word:
            char_counts[ch] += count
    return sorted(ch for ch, _ in _top_items(char_counts, limit_alphabet))


def vocab_from_word_counts(
    word_counts,
    vocab_size=30522,
    limit_alphabet=1000,
    num_unused=0,
    max_token_length=50,
    max_input_words=5_000_000,
    num_iterations=4,
    lower_thresh=1,
    slack_ratio=0.05,
):
    """{word: count} -> the vocab token list (at most `vocab_size` tokens), deterministically.

    Args:
      word_counts: {word: count}, words as `FullTokenizer.basic_tokenize` gives them.
      vocab_size: size of the whole vocabulary, special and [unused] tokens included.
      limit_alphabet: number of distinct characters kept (the most frequent).
      num_unused: number of `[unusedK]` slots after [PAD].
      max_token_length: words longer than this do not take part in learning pieces.
      max_input_words: the learner sees at most this many (most frequent) words.
      num_iterations, lower_thresh, slack_ratio: the tensorflow-text learner's parameters (the
        count threshold is searched to end up within `slack_ratio` below the size; see
        `learn_pieces`).
    """
    specials = special_tokens(num_unused)
    alphabet = select_alphabet(word_counts, limit_alphabet)
    alphabet_set = set(alphabet)
    continuations = [JOINER + ch for ch in alphabet if not is_isolated_char(ch)]
    fixed = specials + alphabet + continuations
    if len(fixed) > vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the {len(specials)} special/unused "
            f"tokens and the {len(alphabet)}-character alphabet ({len(fixed)} tokens); "
            "raise --vocab_size or lower --limit_alphabet"
        )
    # Words the learner can use: made of alphabet characters, not too long, most frequent first.
    learn_words = sorted(
        (
            (w, c)
            for w, c in word_counts.items()
            if len(w) <= max_token_length and len(w) > 1 and all(ch in alphabet_set for ch in w)
        ),
        key=lambda wc: (-wc[1], wc[0]),
    )
    pieces = []
    budget = vocab_size - len(fixed)
    if budget > 0 and learn_words:
        learner_chars = {ch for w, _ in learn_words for ch in w}
        # The learner's own count includes every character of its words, bare and with "##".
        target = budget + 2 * len(learner_chars)
        learned = learn_pieces(
            learn_words,
            target,
            max_token_length=max_token_length,
            max_input_words=max_input_words,
            max_unique_chars=len(alphabet) + 1,
            num_iterations=num_iterations,
            lower_thresh=lower_thresh,
            slack_ratio=slack_ratio,
        )
        seen = set(fixed)
        for token in learned:
            bare = token[len(JOINER) :] if token.startswith(JOINER) else token
            if len(bare) <= 1 or token in seen:
                continue  # characters are placed by us
            seen.add(token)
            pieces.append(token)
        pieces = pieces[:budget]  # the learner's order is most frequent first
    return fixed + pieces


def write_lines_atomic(path, lines):
    """Writes lines (each + "\\n") to `path` via a temporary file and a rename (any gfile path)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    _write_atomic(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def _write_atomic(path, data):
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def learn_wordpiece_vocab(
    corpus_files_or_dir,
    output_file,
    vocab_size=30522,
    do_lower_case=True,
    strip_accents=None,
    limit_alphabet=1000,
    num_unused=0,
    max_lines=None,
    max_words=None,
    **learner_kwargs,
):
    """Learns a WordPiece vocab.txt from raw text files; returns the token list it wrote.

    Args:
      corpus_files_or_dir: a file, directory or glob, or a list of them (any tf.io.gfile paths).
      output_file: the vocab.txt to write (atomically).
      vocab_size: the whole vocabulary's size, special and [unused] tokens included (an upper bound:
        a small corpus may give fewer tokens).
      do_lower_case, strip_accents: the switches the tokenizer will use with this vocab.
      limit_alphabet: the number of distinct characters kept (most frequent); words with other
        characters become [UNK]. CJK text needs thousands (e.g. 5000-8000).
      num_unused: `[unusedK]` slots between [PAD] and [UNK] (BERT's English vocab has 99 there).
      max_lines: learn from the first `max_lines` lines only.
      max_words: bound on the distinct words kept while counting (see `count_words`).
      **learner_kwargs: passed on to `vocab_from_word_counts`.
    """
    start = time.time()
    counts = count_words(corpus_files_or_dir, do_lower_case, strip_accents, max_lines, max_words)
    if not counts:
        raise ValueError(f"No words in the corpus {corpus_files_or_dir!r}")
    learn_start = time.time()
    tokens = vocab_from_word_counts(
        counts,
        vocab_size=vocab_size,
        limit_alphabet=limit_alphabet,
        num_unused=num_unused,
        **learner_kwargs,
    )
    write_lines_atomic(output_file, tokens)
    logging.info(
        "Learned %d tokens in %.1f s (%.1f s in all); wrote %s",
        len(tokens),
        time.time() - learn_start,
        time.time() - start,
        output_file,
    )
    return tokens


# ----- SentencePiece ------------------------------------------------------------------------------
# [PAD] is id 0 and [UNK] id 1, as `FullTokenizer` expects; no BOS/EOS pieces.
_SENTENCEPIECE_IDS = dict(pad_id=0, pad_piece=PAD, unk_id=1, unk_piece=UNK, bos_id=-1, eos_id=-1)


def learn_sentencepiece_vocab(
    corpus,
    output_prefix,
    vocab_size=30522,
    model_type="unigram",
    do_lower_case=True,
    max_lines=None,
    input_sentence_size=2_000_000,
    character_coverage=0.9995,
    num_threads=2,
    seed=0,
    control_symbols=(CLS, SEP, MASK),
    user_defined_symbols=(),
    **trainer_kwargs,
):
    """Trains a SentencePiece model on streamed lines; writes `<prefix>.model` and `<prefix>.vocab`.

    [PAD] is id 0, [UNK] id 1, then [CLS], [SEP], [MASK] (control symbols: in the vocabulary, never
    produced from text), so `FullTokenizer("<prefix>.model")` finds them all. The lines are
    lower-cased when `do_lower_case`, as `FullTokenizer` does before encoding. At most
    `input_sentence_size` lines (a seeded random sample) are used for training.

    Returns:
      the path of the .model file.
    """
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel

    if model_type not in ("unigram", "bpe", "char", "word"):
        raise ValueError(f"model_type must be unigram, bpe, char or word, not {model_type!r}")
    files = list_corpus_files(corpus)

    def sentences():
        for line in iter_corpus_lines(files, 0, max_lines):
            line = line.strip()
            if line:
                yield line.lower() if do_lower_case else line

    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    start = time.time()
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences(),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        **_SENTENCEPIECE_IDS,
        control_symbols=list(control_symbols),
        user_defined_symbols=list(user_defined_symbols),
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        character_coverage=character_coverage,
        num_threads=num_threads,
        minloglevel=1,
        **trainer_kwargs,
    )
    proto = model.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=proto)
    vocab_lines = [f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}" for i in range(sp.get_piece_size())]
    prefix = output_prefix[: -len(".model")] if output_prefix.endswith(".model") else output_prefix
    parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    _write_atomic(prefix + ".model", proto)
    write_lines_atomic(prefix + ".vocab", vocab_lines)
    logging.info(
        "Trained a %d-piece SentencePiece %s model in %.1f s; wrote %s.model",
        sp.get_piece_size(),
        model_type,
        time.time() - start,
        prefix,
    )
    return prefix + ".model"


# ----- evaluation ---------------------------------------------------------------------------------
def unk_counts(tokenizer, lines):
    """(number of [UNK] ids, number of ids) over the lines, streamed in batches."""
    unk = total = 0
    for batch in _batches(lines):
        for ids in tokenizer.encode_batch(batch):
            total += len(ids)
            unk += sum(1 for i in ids if i == tokenizer.unk_id)
    return unk, total


def unk_rate(tokenizer, lines):
    """Fraction of the token ids `tokenizer.encode_batch` gives for `lines` that are [UNK]."""
    unk, total = unk_counts(tokenizer, lines)
    return unk / total if total else 0.0


# ----- command line -------------------------------------------------------------------------------
NEGATIONS = {
    "no_lower_case": ("do_lower_case", False),
    "no_strip_accents": ("strip_accents", False),
}


FLAGS = (
    cli.CORPUS_DIR,
    ("corpus_files", list, None, "Comma-separated corpus files or glob patterns."),
    ("output_file", str, None, "vocab.txt (WordPiece) or the SentencePiece output prefix."),
    ("model_type", MODEL_TYPES, "wordpiece", "wordpiece, or a SentencePiece unigram / bpe."),
    ("vocab_size", int, 30522, "Vocabulary size, special tokens included."),
    cli.DO_LOWER_CASE,
    ("strip_accents", bool, None, "WordPiece: strip accents; default: as --do_lower_case."),
    ("limit_alphabet", int, 1000, "WordPiece: characters kept (Chinese: thousands)."),
    ("num_unused", int, 0, "WordPiece: [unusedK] slots between [PAD] and [UNK]."),
    ("max_lines", int, None, "Use at most this many corpus lines."),
    ("max_words", int, None, "WordPiece: about this many distinct words kept (memory bound)."),
    ("heldout_fraction", float, 0.0, "Hold out this last fraction; report its [UNK] rate."),
    ("input_sentence_size", int, 2_000_000, "SentencePiece: lines sampled for training."),
    ("character_coverage", float, 0.9995, "SentencePiece: character coverage."),
    ("seed", int, 0, "SentencePiece: random seed."),
)


def _validate(fv):
    if not fv.corpus_dir and not fv.corpus_files:
        raise flags.Error("--corpus_dir or --corpus_files is required")
    if not 0.0 <= fv.heldout_fraction < 1.0:
        raise flags.Error("--heldout_fraction must be in [0, 1)")


def main(fv):
    """Learns the vocabulary the flags describe; prints the held-out [UNK] rate when asked."""
    corpus = ([fv.corpus_dir] if fv.corpus_dir else []) + list(fv.corpus_files or [])
    files = list_corpus_files(corpus)
    max_lines, heldout = fv.max_lines, None
    if fv.heldout_fraction > 0:
        total = count_lines(files) if max_lines is None else min(max_lines, count_lines(files))
        n_heldout = max(1, int(round(total * fv.heldout_fraction)))
        max_lines = total - n_heldout
        heldout = (max_lines, total)
        logging.info("Learning from %d lines, holding out the last %d", max_lines, n_heldout)

    start = time.time()
    if fv.model_type == "wordpiece":
        names = ("vocab_size", "do_lower_case", "strip_accents", "limit_alphabet", "num_unused")
        options = cli.values(fv, "max_words", *names)
        learn_wordpiece_vocab(files, fv.output_file, max_lines=max_lines, **options)
        vocab_file = fv.output_file
    else:
        names = ("vocab_size", "model_type", "do_lower_case", "input_sentence_size", "seed")
        options = cli.values(fv, "character_coverage", *names)
        vocab_file = learn_sentencepiece_vocab(
            files, fv.output_file, max_lines=max_lines, **options
        )
    logging.info("Learning took %.1f s", time.time() - start)
    if heldout:
        tokenizer = tokenization.FullTokenizer(vocab_file, fv.do_lower_case, fv.strip_accents)
        unk, total = unk_counts(tokenizer, iter_corpus_lines(files, *heldout))
        rate = unk / total if total else 0.0
        logging.info(
            "[UNK] rate on %d held-out lines: %.4f%% (%d of %d tokens)",
            heldout[1] - heldout[0],
            100 * rate,
            unk,
            total,
        )
        print(
            f"heldout_unk_rate={rate:.6f} unk={unk} tokens={total} lines={heldout[1] - heldout[0]}"
        )
    return 0


COMMAND = cli.Command(
    usage="--corpus_dir=DIR|--corpus_files=F1,F2 --output_file=vocab.txt [flags]",
    flags=FLAGS,
    main=main,
    required=("output_file",),
    negations=NEGATIONS,
    validate=_validate,
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
