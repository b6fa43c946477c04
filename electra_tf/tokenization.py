"""Reference-exact BERT/ELECTRA tokenization, fast.

The reference (google-research/electra `model/tokenization.py`, i.e. BERT's) tokenizes in pure
Python: clean control characters, space out CJK characters, split on whitespace, lower-case
(`str.lower`), strip accents (NFD, drop Mn marks), split punctuation, then greedy longest-match
WordPiece, with words over 200 characters becoming [UNK].

`FullTokenizer` keeps that exact algorithm for `tokenize` (one text, reference API) and adds
`encode_batch`, which is exact too but fast: the normalisation runs as whole-string C-level
passes (`str.translate`, `str.lower`, `unicodedata.normalize`) with an ASCII fast path, and the
splitting + WordPiece runs in tensorflow-text's `FastWordpieceTokenizer`, whose pre-tokenizer
splits on exactly the reference's whitespace, punctuation and CJK characters for every character
Python's Unicode tables know. The rare strings where the two could differ (words longer than 200
characters) fall back to the exact Python path.

Cleaning follows ELECTRA's `_is_control`, not BERT's older one: every character whose Unicode
category starts with "C" is dropped (control Cc, format Cf, private use Co, unassigned Cn, lone
surrogates Cs; "unassigned" as Python's `unicodedata` sees it), except \t \n \r, which are
whitespace. BERT's rule dropped Cc and Cf only.

`tf_tokenize` is the same pipeline as TensorFlow ops (RE2 regexes, ICU NFD), for tf.data and
SavedModels: string tensor in, ragged ids out.

A SentencePiece `.model` file is accepted as the vocabulary too.
"""

import functools
import re
import sys
import unicodedata

import numpy as np
import tensorflow as tf

MAX_INPUT_CHARS_PER_WORD = 200
_BATCH_CHUNK = 8192
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# The reference's CJK ranges (BasicTokenizer._is_chinese_char).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# The reference counts these ASCII symbols as punctuation although Unicode does not.
ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def is_punctuation(char):
    cp = ord(char)
    if any(lo <= cp <= hi for lo, hi in ASCII_PUNCT_RANGES):
        return True
    return unicodedata.category(char).startswith("P")


def is_control(char):
    """ELECTRA's `_is_control`: any category starting with "C" (Cc, Cf, Co, Cn, Cs) but \\t \\n \\r."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_whitespace(char):
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _ranges(cps):
    """Sorted code points -> [(first, last)] runs of consecutive code points."""
    parts, start, prev = [], None, None
    for cp in cps:
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            parts.append((start, prev))
            start = prev = cp
    if start is not None:
        parts.append((start, prev))
    return parts


def _ranges_to_class(cps):
    """Sorted code points -> a regex character-class body of ranges."""
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in _ranges(cps)
    )


def _runs(mask):
    """Boolean array over code points -> [(first, last)] runs of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), (edges[1::2] - 1).tolist()))


# Per-character flags for the batch normaliser.
_REMOVE = 1  # the reference drops it: NUL, U+FFFD and categories Cc, Cf, Co, Cn, Cs
_NON_ASCII = 2
_REMOVE_RARE = 4  # also: unassigned or private use beyond U+FFFF (~900k, too many for a table)
_MARK = 8  # a nonspacing mark (Mn), dropped when stripping accents


@functools.cache
def _unicode_tables():
    """Lookup tables derived once from Python's Unicode database (well under a second)."""
    flags = bytearray(sys.maxunicode + 1)
    punct = []
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        flag = _NON_ASCII if cp > 127 else 0
        if cp in (0, 0xFFFD) or (cat.startswith("C") and cp not in (9, 10, 13)):
            flag |= _REMOVE
            if cp > 0xFFFF and cat in ("Cn", "Co"):
                flag |= _REMOVE_RARE
        elif cat == "Mn":
            flag |= _MARK
        flags[cp] = flag
        if cat.startswith("P") or any(lo <= cp <= hi for lo, hi in ASCII_PUNCT_RANGES):
            punct.append(cp)
    flags = np.frombuffer(bytes(flags), dtype=np.uint8)
    cjk = [cp for lo, hi in CJK_RANGES for cp in range(lo, hi + 1)]
    word_breakers = _ranges_to_class(sorted(set(punct) | set(cjk)))
    removed_utf8 = (flags & _REMOVE) != 0
    removed_utf8[0xD800:0xE000] = False  # UTF-8 (the in-graph op's input) cannot carry surrogates
    return {
        "flags": flags,
        "flag_bytes": flags.tobytes(),
        "remove": {
            int(cp): None for cp in np.flatnonzero((flags & (_REMOVE | _REMOVE_RARE)) == _REMOVE)
        },
        # The whole set as runs, an RE2 class for the in-graph op.
        "remove_re2": "".join(
            f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}"
            for lo, hi in _runs(removed_utf8)
        ),
        "marks": {int(cp): None for cp in np.flatnonzero(flags & _MARK)},
        # A run of >200 characters the reference keeps as one word (and so maps to [UNK]).
        "long_word_re": re.compile(f"[^\\s{word_breakers}]{{{MAX_INPUT_CHARS_PER_WORD + 1},}}"),
    }


def _line_flags(texts, char_flags):
    """OR of the character flags of each text, computed for the whole batch in numpy."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    result = np.zeros(len(texts), dtype=np.uint8)
    nonempty = lengths > 0
    if nonempty.any():
        codepoints = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
        starts = (np.cumsum(lengths) - lengths)[nonempty]
        result[nonempty] = np.bitwise_or.reduceat(char_flags[codepoints], starts)
    return result.tolist()


def load_vocab(vocab_file):
    """Reads a vocabulary (one token per line) the way the reference does: later duplicates win."""
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(
            f"Vocabulary file not found: {vocab_file}. Pass --vocab_file "
            "pointing at a WordPiece vocab.txt or a SentencePiece .model."
        )
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
        lines = f.read().decode("utf-8", "ignore").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not any(line.strip() for line in lines):
        raise ValueError(
            f"Vocabulary file {vocab_file} is empty (no tokens): pass a vocab.txt with one token "
            "per line (electra-learn-vocab makes one)."
        )
    vocab = {}
    for index, line in enumerate(lines):
        vocab[line.strip()] = index
    return vocab


class FullTokenizer:
    """BasicTokenizer + WordPiece, identical to the reference; or a SentencePiece model.

    Args:
      vocab_file: WordPiece `vocab.txt` or SentencePiece `.model` (any tf.io.gfile path).
      do_lower_case: lower-case with Python's `str.lower` (WordPiece) / before encoding (SentencePiece).
      strip_accents: NFD + drop combining marks; None means "same as do_lower_case".
    """

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None):
        self.vocab_file = vocab_file
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = self.do_lower_case if strip_accents is None else bool(strip_accents)
        self.is_sentencepiece = vocab_file.endswith(".model")
        if self.is_sentencepiece:
            self._init_sentencepiece(vocab_file)
        else:
            self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {v: k for k, v in self.vocab.items()}
        self.vocab_size = max(self.vocab.values()) + 1
        missing = [t for t in ("[UNK]",) if t not in self.vocab]
        if missing and not self.is_sentencepiece:
            raise ValueError(f"Vocabulary {vocab_file} has no {missing[0]} token.")
        self.unk_id = self.vocab.get("[UNK]", 0)
        self._fast = None

    # ----- SentencePiece -----------------------------------------------------------------------
    def _init_sentencepiece(self, model_file):
        import sentencepiece as spm

        with tf.io.gfile.GFile(model_file, "rb") as f:
            self._sp_model_proto = f.read()
        self._sp = spm.SentencePieceProcessor(model_proto=self._sp_model_proto)
        self.vocab = {self._sp.id_to_piece(i): i for i in range(self._sp.get_piece_size())}

    # ----- reference API -----------------------------------------------------------------------
    def tokenize(self, text):
        """One text -> tokens, with the reference's pure-Python algorithm."""
        text = _to_unicode(text)
        if self.is_sentencepiece:
            return self._sp.encode(text.lower() if self.do_lower_case else text, out_type=str)
        return [piece for word in self.basic_tokenize(text) for piece in self._wordpiece(word)]

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]

    def convert_ids_to_tokens(self, ids):
        return [self.inv_vocab[i] for i in ids]

    def basic_tokenize(self, text):
        """The reference BasicTokenizer: clean, CJK spacing, lower, strip accents, punctuation split."""
        text = _to_unicode(text)
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or is_control(ch):
                continue
            if is_whitespace(ch):
                out.append(" ")
            elif is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        words = []
        for token in "".join(out).split():
            if self.do_lower_case:
                token = token.lower()
            if self.strip_accents:
                token = "".join(
                    c
                    for c in unicodedata.normalize("NFD", token)
                    if unicodedata.category(c) != "Mn"
                )
            current = []
            for ch in token:
                if is_punctuation(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return " ".join(words).split()

    def _wordpiece(self, word):
        """Greedy longest-match-first WordPiece of one basic token."""
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end, match = len(word), None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    match = candidate
                    break
                end -= 1
            if match is None:
                return ["[UNK]"]
            pieces.append(match)
            start = end
        return pieces

    # ----- fast batch path ---------------------------------------------------------------------
    def normalize_batch(self, texts):
        """Reference normalisation as whole-string C-level passes; None where only the slow path is exact.

        The results still need the whitespace/punctuation/CJK split, which FastWordpieceTokenizer's
        pre-tokenizer performs exactly as the reference for every character Python's tables assign.
        Cleaning runs before lower-casing, as in the reference (it matters for Greek final sigma).
        """
        tables = _unicode_tables()
        out = []
        for text, flags in zip(texts, _line_flags(texts, tables["flags"])):
            if flags & _REMOVE_RARE:
                flag_bytes = tables["flag_bytes"]
                text = "".join(c for c in text if not flag_bytes[ord(c)] & _REMOVE)
            elif flags & _REMOVE:
                text = text.translate(tables["remove"])
            if self.do_lower_case:
                lowered = text.lower()
                if len(lowered) != len(text):
                    flags |= _MARK  # special casings such as U+0130 produce combining marks
                text = lowered
            if self.strip_accents and flags & _NON_ASCII:
                if not unicodedata.is_normalized("NFD", text):
                    text = unicodedata.normalize("NFD", text)
                    flags |= _MARK
                if flags & _MARK:
                    text = text.translate(tables["marks"])
            if len(text) > MAX_INPUT_CHARS_PER_WORD and _has_long_word(text):
                out.append(None)
                continue
            out.append(text)
        return out

    def _fast_wordpiece(self):
        if self._fast is None:
            self._fast = self.wordpiece_op(no_pretokenization=False)
        return self._fast

    def wordpiece_op(self, no_pretokenization):
        """This vocabulary's WordPiece as tensorflow_text's FastWordpieceTokenizer (int64 ids,
        [UNK] for unknown and over-long words); `no_pretokenization` says whether its input is
        already split into words."""
        import tensorflow_text as tf_text

        return tf_text.FastWordpieceTokenizer(
            vocab=self._vocab_list(),
            token_out_type=tf.int64,
            unknown_token="[UNK]",
            max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD,
            no_pretokenization=no_pretokenization,
        )

    def _vocab_list(self):
        """Vocabulary as an id-ordered list; shadowed duplicates get unmatchable placeholders.

        A placeholder contains a space, and words never do after pre-tokenization.
        """
        tokens = [f"[shadowed duplicate {i}]" for i in range(self.vocab_size)]
        for token, index in self.vocab.items():
            tokens[index] = token
        return tokens

    def encode_batch(self, texts):
        """Many texts -> list of id lists, exactly as `convert_tokens_to_ids(tokenize(t))`."""
        texts = [_to_unicode(t) for t in texts]
        if self.is_sentencepiece:
            if self.do_lower_case:
                texts = [t.lower() for t in texts]
            return self._sp.encode(texts)
        result = []
        for start in range(0, len(texts), _BATCH_CHUNK):
            result.extend(self._encode_chunk(texts[start : start + _BATCH_CHUNK]))
        return result

    def _encode_chunk(self, texts):
        normalized = self.normalize_batch(texts)
        fast = [t if t is not None else "" for t in normalized]
        ragged = self._fast_wordpiece().tokenize(tf.constant(fast, dtype=tf.string))
        flat = ragged.flat_values.numpy().tolist()
        splits = ragged.row_splits.numpy().tolist()
        out = [flat[splits[i] : splits[i + 1]] for i in range(len(texts))]
        for i, norm in enumerate(normalized):
            if norm is None:
                out[i] = self.convert_tokens_to_ids(self.tokenize(texts[i]))
        return out

    def tf_tokenize(self, texts):
        """String tensor [B] -> RaggedTensor [B, (tokens)] of int64 ids, as TensorFlow ops only."""
        if not hasattr(self, "_graph_tokenizer"):
            self._graph_tokenizer = GraphTokenizer(self)
        return self._graph_tokenizer(texts)


def _has_long_word(text):
    for word in text.split():
        if len(word) > MAX_INPUT_CHARS_PER_WORD and _unicode_tables()["long_word_re"].search(word):
            return True
    return False


def _to_unicode(text):
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    return text


def _cjk_class_re2():
    return "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in CJK_RANGES)


class GraphTokenizer(tf.Module):
    """The reference tokenization as TF ops (RE2 + ICU), usable in tf.data and SavedModels."""

    def __init__(self, tokenizer):
        super().__init__()
        import tensorflow_text as tf_text

        self._tf_text = tf_text
        self.do_lower_case = tokenizer.do_lower_case
        self.strip_accents = tokenizer.strip_accents
        self.is_sentencepiece = tokenizer.is_sentencepiece
        if self.is_sentencepiece:
            self._sp = tf_text.SentencepieceTokenizer(
                model=tokenizer._sp_model_proto, out_type=tf.int32
            )
            return
        self._wordpiece = tokenizer.wordpiece_op(no_pretokenization=True)
        self._unk = tf.constant("[UNK]")
        self._remove_pattern = f"[{_unicode_tables()['remove_re2']}]"
        punct = "!-/:-@\\[-`{-~\\p{P}"
        self._split_pattern = f"[\\s\\p{{Zs}}\\x{{2028}}\\x{{2029}}]+|[{punct}{_cjk_class_re2()}]"
        self._keep_pattern = f"[{punct}{_cjk_class_re2()}]"

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        tf_text = self._tf_text
        if self.is_sentencepiece:
            if self.do_lower_case:
                texts = tf.strings.lower(texts, encoding="utf-8")
            return tf.cast(self._sp.tokenize(texts), tf.int64)
        # Invalid UTF-8 is dropped as `bytes.decode("utf-8", "ignore")` drops it, then cleaning.
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="ignore")
        texts = tf.strings.regex_replace(texts, self._remove_pattern, "")
        if self.do_lower_case:
            texts = tf.strings.lower(texts, encoding="utf-8")
        if self.strip_accents:
            texts = tf.strings.regex_replace(tf_text.normalize_utf8(texts, "NFD"), "\\p{Mn}", "")
        words = tf_text.regex_split(texts, self._split_pattern, self._keep_pattern)
        long_words = (
            tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_INPUT_CHARS_PER_WORD
        )
        flat_words = tf.where(long_words, self._unk, words.flat_values)
        pieces = self._wordpiece.tokenize(flat_words)  # [words, (pieces)]
        return words.with_flat_values(pieces).merge_dims(1, 2)
