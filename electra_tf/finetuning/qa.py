"""Extractive (span) question answering: SQuAD and MRQA reading, windowed features, span decoding.

Serves SQuAD 1.1/2.0, KorQuAD 1.0, CMRC 2018, DRCD and the MRQA 2019 tasks. It follows the reference
(google-research/electra `finetune/qa`): a context is split into words at whitespace with a
char -> word map; an answer's characters map to words, the words to WordPiece sub-tokens, and
`improve_answer_span` narrows that to the sub-tokens spelling the answer; a long context becomes
windows of `max_seq_length` tokens every `doc_stride` tokens (`[CLS] question [SEP] window [SEP]`,
start/end 0 = [CLS] when the answer is not inside the window or there is none); decoding keeps the
n best valid spans whose start token has its maximum context in the window, and for SQuAD 2.0
compares the best span's score with the null score.

Two departures make it exact for every script, without changing any model input:

* each CJK character is a word of its own, so answers in Chinese contexts (no spaces) map to the
  right characters; the tokenizer splits CJK characters apart anyway, so the sub-tokens are the
  reference's;
* every sub-token records the context characters it came from, and a predicted span is cut
  straight out of the context. The reference re-aligns normalised text to the original instead
  (`get_final_text`), which falls back to whole words on [UNK] pieces and on normalisation that
  changes lengths.
"""

import collections
import dataclasses
import itertools
import json
import unicodedata

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import tokenization


@dataclasses.dataclass
class Document:
    """A context split into words (the reference's doc_tokens and char_to_word_offset)."""

    context: str
    words: list
    word_starts: list
    char_to_word: list

    def word_end(self, index):
        return self.word_starts[index] + len(self.words[index])


def split_context(context):
    """Words at whitespace (the tokenizer's definition), each CJK character a word of its own."""
    words, starts, char_to_word = [], [], []
    previous_breaks = True
    for i, char in enumerate(context):
        if tokenization.is_whitespace(char):
            previous_breaks = True
        else:
            cjk = tokenization.is_cjk(ord(char))
            if previous_breaks or cjk:
                words.append(char)
                starts.append(i)
            else:
                words[-1] += char
            previous_breaks = cjk
        char_to_word.append(len(words) - 1)
    return Document(context, words, starts, char_to_word)


@dataclasses.dataclass
class QAExample:
    """One question on one context.

    `answers` holds every gold answer text (empty for an unanswerable question); `answer_text`,
    its context offset `start_char`, and `start_word`/`end_word` locate the first answer (None when
    there is none or it could not be found at its offset).
    """

    eid: int
    qas_id: str
    question: str
    doc: Document
    answers: list
    answer_text: str | None = None
    start_char: int | None = None
    start_word: int | None = None
    end_word: int | None = None
    is_impossible: bool = False


def _squeeze(text):
    return "".join(text.split()).lower()


def _locate_answer(example, text, start_char):
    """Sets the answer's word span; False when its offset does not hold its text."""
    doc = example.doc
    end_char = start_char + len(text) - 1
    if not text or start_char < 0 or end_char >= len(doc.context):
        return False
    start_word, end_word = doc.char_to_word[start_char], doc.char_to_word[end_char]
    if start_word < 0:
        return False
    span = doc.context[doc.word_starts[start_word] : doc.word_end(end_word)]
    if _squeeze(text) not in _squeeze(span):
        return False
    example.answer_text, example.start_char = text, start_char
    example.start_word, example.end_word = start_word, end_word
    return True


def _add_example(examples, doc, qas_id, question, answers, first, is_impossible, is_training):
    """Appends one question's QAExample; `first` is the (text, start char) of the answer to train
    on. Returns False when it has none that can be located (the example is then dropped in
    training, kept for scoring otherwise)."""
    example = QAExample(
        eid=len(examples),
        qas_id=qas_id,
        question=question,
        doc=doc,
        answers=answers,
        is_impossible=is_impossible,
    )
    located = is_impossible or (first is not None and _locate_answer(example, *first))
    if located or not is_training:
        examples.append(example)
    return located


def _log_failures(failures, is_training):
    if failures:
        logging.info(
            "%d questions without a locatable answer%s",
            failures,
            " (dropped)" if is_training else "",
        )


def examples_from_squad(articles, version_2=False, is_training=False):
    """SQuAD-format articles (the JSON's "data" list) -> QAExamples.

    In training, questions whose answer cannot be found at its offset are dropped, as the reference
    does; otherwise they are kept (for scoring) without a located answer.
    """
    examples, failures = [], 0
    for article in articles:
        for paragraph in article["paragraphs"]:
            doc = split_context(paragraph["context"])
            for qa in paragraph["qas"]:
                answers = qa.get("answers", [])
                first = (answers[0]["text"], answers[0]["answer_start"]) if answers else None
                failures += not _add_example(
                    examples,
                    doc,
                    qa.get("id"),
                    qa["question"],
                    [a["text"] for a in answers],
                    first,
                    version_2 and bool(qa.get("is_impossible", False)),
                    is_training,
                )
    _log_failures(failures, is_training)
    return examples


def read_squad(path, version_2=False, is_training=False):
    """Reads a SQuAD-format JSON file (SQuAD, KorQuAD, CMRC 2018, DRCD)."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Fine-tuning data file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = json.loads(f.read().decode("utf-8"))
    return examples_from_squad(data["data"], version_2, is_training)


# ----- MRQA 2019 shared task --------------------------------------------------------------------


def _mrqa_error(path, number, problem):
    return ValueError(
        f"{path} line {number}: {problem}; each line after the header must be one MRQA context "
        '{"context": ..., "qas": [{"qid", "question", "answers", "detected_answers"}]}.'
    )


def _is_strings(value):
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _mrqa_first_answer(path, number, qa, is_training):
    """(text, start char) of the first detected answer's first span, as the reference trains on;
    None when a question outside training has no detected answers."""
    detected = qa.get("detected_answers")
    if detected is None and not is_training:
        return None
    qid = qa["qid"]
    try:
        text, (start, _) = detected[0]["text"], detected[0]["char_spans"][0]
    except (TypeError, KeyError, IndexError, ValueError):
        raise _mrqa_error(
            path,
            number,
            f'question {qid!r} needs detected_answers[0] with a "text" and "char_spans" '
            "[[start, end], ...]",
        ) from None
    if not isinstance(text, str) or not isinstance(start, int):
        raise _mrqa_error(path, number, f"question {qid!r}: detected answer text/offset mistyped")
    return text, start


def read_mrqa(path, is_training=False):
    """Reads an MRQA 2019 shared-task file (JSON lines, header line first), as the reference's
    MRQATask: the context read as plain text ([PAR], [DOC], [TLE] are words like any other), the
    first detected answer's first char span to train on, every "answers" string as gold, keyed by
    "qid". Malformed lines are errors naming the file and line."""
    if not tf.io.gfile.exists(path):
        hint = (
            f" ({path}.gz is there: gunzip it, the reference reads plain .jsonl)"
            if tf.io.gfile.exists(path + ".gz")
            else ""
        )
        raise FileNotFoundError(f"Fine-tuning data file not found: {path}{hint}")
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    examples, failures = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise _mrqa_error(path, number, f"not valid JSON ({e.msg})") from None
        if isinstance(record, dict) and "header" in record:
            continue
        if not (
            isinstance(record, dict)
            and isinstance(record.get("context"), str)
            and isinstance(record.get("qas"), list)
        ):
            raise _mrqa_error(path, number, 'no "context" string and "qas" list')
        doc = split_context(record["context"])
        for k, qa in enumerate(record["qas"]):
            if not (
                isinstance(qa, dict)
                and isinstance(qa.get("qid"), str)
                and isinstance(qa.get("question"), str)
                and _is_strings(qa.get("answers"))
            ):
                raise _mrqa_error(
                    path,
                    number,
                    f'qas[{k}] needs a "qid" and "question" (strings) and "answers" (a non-empty '
                    "list of strings)",
                )
            failures += not _add_example(
                examples,
                doc,
                qa["qid"],
                qa["question"],
                list(qa["answers"]),
                _mrqa_first_answer(path, number, qa, is_training),
                False,
                is_training,
            )
    _log_failures(failures, is_training)
    return examples


# ----- sub-tokens with character offsets --------------------------------------------------------


@dataclasses.dataclass
class DocTokens:
    """A document's WordPiece sub-tokens, each word's first sub-token, and for each sub-token the
    [start, end) context characters it came from."""

    tokens: list
    ids: list
    word_to_token: list
    char_spans: list


def _normalized_chars(word, tokenizer):
    """(char, index in word) pairs: the word normalised as the basic tokenizer does, per char."""
    out = []
    for i, char in enumerate(word):
        if ord(char) in (0, 0xFFFD) or tokenization.is_control(char):
            continue
        if tokenizer.do_lower_case:
            char = char.lower()
        if tokenizer.strip_accents:
            char = "".join(
                c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn"
            )
        out.extend((c, i) for c in char)
    return out


def _word_char_spans(word, start, basics, pieces, tokenizer):
    """Context character spans of a word's sub-tokens; whole-word spans where alignment fails."""
    whole = (start, start + len(word))
    normalized = _normalized_chars(word, tokenizer)
    if "".join(c for c, _ in normalized) != "".join(basics):
        return [whole] * sum(len(p) for p in pieces)
    spans, cursor = [], 0
    for basic, basic_pieces in zip(basics, pieces):
        lengths = (
            [len(basic)]
            if basic_pieces == ["[UNK]"]
            else [
                len(p) - 2 if k and p.startswith("##") else len(p)
                for k, p in enumerate(basic_pieces)
            ]
        )
        if sum(lengths) != len(basic):
            lengths = [len(basic)] * len(basic_pieces)
            offsets = [cursor] * len(basic_pieces)
        else:
            offsets = list(itertools.accumulate([cursor] + lengths[:-1]))
        for offset, length in zip(offsets, lengths):
            spans.append(
                (start + normalized[offset][1], start + normalized[offset + length - 1][1] + 1)
            )
        cursor += len(basic)
    return spans


def _tokenize_documents(docs, tokenizer):
    """{id(doc): DocTokens} for distinct documents; sub-tokens equal `tokenizer.tokenize(word)`."""
    if tokenizer.is_sentencepiece:
        raise ValueError(
            "Span QA needs a WordPiece vocabulary (vocab.txt), not a SentencePiece model."
        )
    docs = list({id(doc): doc for doc in docs}.values())
    basics = [[tokenizer.basic_tokenize(word) for word in doc.words] for doc in docs]
    flat = [b for doc_basics in basics for word_basics in doc_basics for b in word_basics]
    flat_ids = iter(tokenizer.encode_batch(flat))
    result = {}
    for doc, doc_basics in zip(docs, basics):
        out = DocTokens([], [], [], [])
        for w, (word, word_basics) in enumerate(zip(doc.words, doc_basics)):
            out.word_to_token.append(len(out.tokens))
            ids = [next(flat_ids) for _ in word_basics]
            pieces = [tokenizer.convert_ids_to_tokens(i) for i in ids]
            out.char_spans += _word_char_spans(
                word, doc.word_starts[w], word_basics, pieces, tokenizer
            )
            for piece_ids, word_pieces in zip(ids, pieces):
                out.ids += piece_ids
                out.tokens += word_pieces
        result[id(doc)] = out
    return result


def _exact_token_span(doc, first, last, start_char, end_char):
    """Sub-tokens in [first, last] starting and ending exactly at the answer's characters, if any."""
    starts = [i for i in range(first, last + 1) if doc.char_spans[i][0] == start_char]
    ends = [j for j in range(first, last + 1) if doc.char_spans[j][1] == end_char]
    if starts and ends and starts[0] <= ends[-1]:
        return starts[0], ends[-1]
    return None


def improve_answer_span(doc_tokens, start, end, tokenizer, answer_text):
    """The reference's refinement: within [start, end], the first sub-token span (leftmost start,
    then longest) that spells the tokenized answer; unchanged when none does."""
    target = " ".join(tokenizer.tokenize(answer_text))
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start : new_end + 1]) == target:
                return new_start, new_end
    return start, end


# ----- features ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """One feature: `length` document tokens from `doc_start`, at feature position `offset`."""

    example_index: int
    span_index: int
    doc_start: int
    length: int
    offset: int


@dataclasses.dataclass
class QAFeatures:
    """Model inputs and what decoding needs.

    arrays: numpy, first axis one entry per window: "input_ids", "input_mask", "segment_ids"
      [N, max_seq_length] int32; "start_positions", "end_positions" [N] int32 (0 = [CLS]: no answer,
      answer outside the window, or answer unknown); "is_impossible" [N] int32; "example_index" [N].
    windows: per feature, where its context tokens sit.
    documents: per example, its document's DocTokens (shared by questions on one context).
    spans: per example, the (start, length) of all its windows, for the max-context rule.
    """

    arrays: dict
    windows: list
    documents: list
    spans: list


def doc_spans(num_tokens, max_tokens, stride):
    """The reference's sliding windows: (start, length) every `stride` tokens until the end."""
    spans, start = [], 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, stride)
    return spans


def is_max_context(spans, span_index, position):
    """Whether window `span_index` gives doc token `position` the most context (reference rule)."""
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if best_score is None or score > best_score:
                best_score, best_index = score, index
    return span_index == best_index


def qa_features(examples, tokenizer, max_seq_length=512, doc_stride=128, max_query_length=64):
    """QAExamples -> QAFeatures (one or more windows per example).

    Positions are filled wherever the example's answer is located (train and dev alike): the
    window's sub-token span of the answer, or 0/0 when the answer lies outside the window.
    """
    if max_seq_length - max_query_length - 3 <= 0:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for the context after "
            f"max_query_length={max_query_length} question tokens"
        )
    vocab = tokenizer.vocab
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    docs = _tokenize_documents([ex.doc for ex in examples], tokenizer)
    queries = tokenizer.encode_batch([ex.question for ex in examples])
    rows = collections.defaultdict(list)
    windows, documents, all_spans = [], [], []
    for ex_index, example in enumerate(examples):
        doc = docs[id(example.doc)]
        documents.append(doc)
        query = queries[ex_index][:max_query_length]
        tok_start = tok_end = None
        if example.start_word is not None:
            tok_start = doc.word_to_token[example.start_word]
            next_word = example.end_word + 1
            tok_end = (
                doc.word_to_token[next_word]
                if next_word < len(doc.word_to_token)
                else len(doc.tokens)
            ) - 1
            # Sub-tokens matching the answer's characters exactly, else the reference's text match
            # (which can pick the wrong one of several [UNK]s or repeats within the words).
            exact = _exact_token_span(
                doc,
                tok_start,
                tok_end,
                example.start_char,
                example.start_char + len(example.answer_text),
            )
            tok_start, tok_end = exact or improve_answer_span(
                doc.tokens, tok_start, tok_end, tokenizer, example.answer_text
            )
        spans = doc_spans(len(doc.tokens), max_seq_length - len(query) - 3, doc_stride)
        all_spans.append(spans)
        offset = len(query) + 2
        for span_index, (start, length) in enumerate(spans):
            ids = [cls_id] + query + [sep_id] + doc.ids[start : start + length] + [sep_id]
            pad = max_seq_length - len(ids)
            rows["input_ids"].append(ids + [0] * pad)
            rows["input_mask"].append([1] * len(ids) + [0] * pad)
            rows["segment_ids"].append([0] * offset + [1] * (length + 1) + [0] * pad)
            inside = (
                tok_start is not None
                and not example.is_impossible
                and start <= tok_start
                and tok_end < start + length
            )
            rows["start_positions"].append(tok_start - start + offset if inside else 0)
            rows["end_positions"].append(tok_end - start + offset if inside else 0)
            rows["is_impossible"].append(int(example.is_impossible))
            rows["example_index"].append(ex_index)
            windows.append(Window(ex_index, span_index, start, length, offset))
    arrays = {
        key: np.asarray(rows[key], dtype=np.int32).reshape(
            (-1, max_seq_length) if key in ("input_ids", "input_mask", "segment_ids") else (-1,)
        )
        for key in (
            "input_ids",
            "input_mask",
            "segment_ids",
            "start_positions",
            "end_positions",
            "is_impossible",
            "example_index",
        )
    }
    return QAFeatures(arrays, windows, documents, all_spans)


# ----- decoding ---------------------------------------------------------------------------------


@dataclasses.dataclass
class QAPredictions:
    """Decoded answers, keyed by question id.

    predictions: the final answer ("" when SQuAD 2.0 null odds exceed the threshold).
    best_non_null: the best non-empty span (what the reference writes for SQuAD 2.0 and what the
      official script's best-threshold search takes with `null_odds`).
    null_odds: SQuAD 2.0 only: no-answer score minus best span score, or the answerable classifier's
      logit when the outputs carry one.
    nbest: up to n_best_size {"text", "probability", "start_logit", "end_logit"} per question.
    """

    predictions: dict
    best_non_null: dict
    null_odds: dict
    nbest: dict


def _softmax(scores):
    exp = np.exp(np.asarray(scores, dtype=np.float64) - np.max(scores))
    return exp / exp.sum()


def _candidates(outputs, f, n_best_size):
    """(start, end, start score, end score) candidates of feature f, plain or joint (beam) heads."""
    if "start_top_index" in outputs:
        starts, start_scores = outputs["start_top_index"][f], outputs["start_top_log_probs"][f]
        ends, end_scores = outputs["end_top_index"][f], outputs["end_top_log_probs"][f]
        return [
            (int(s), int(e), float(start_scores[i]), float(end_scores[i][j]))
            for i, s in enumerate(starts)
            for j, e in enumerate(ends[i])
        ]
    start_logits, end_logits = outputs["start_logits"][f], outputs["end_logits"][f]
    starts = np.argsort(-np.asarray(start_logits), kind="stable")[:n_best_size]
    ends = np.argsort(-np.asarray(end_logits), kind="stable")[:n_best_size]
    return [
        (int(s), int(e), float(start_logits[s]), float(end_logits[e])) for s in starts for e in ends
    ]


def postprocess_qa(
    examples,
    features,
    outputs,
    n_best_size=20,
    max_answer_length=30,
    version_2=False,
    na_threshold=-2.75,
):
    """Model outputs -> answers, as the reference's SpanBasedQAScorer.write_predictions.

    Args:
      examples, features: what `qa_features` was given and returned.
      outputs: numpy arrays aligned with the features: "start_logits"/"end_logits" [N, L], or a
        joint head's "start_top_index"/"start_top_log_probs" [N, K] and "end_top_index"/
        "end_top_log_probs" [N, K, K]; optional "answerable_logit" [N] (higher = unanswerable),
        which then replaces the start+end null score, as the reference's answerable classifier.
      n_best_size, max_answer_length: the reference's span filters (in sub-tokens).
      version_2: SQuAD 2.0: compute null odds and answer "" when they exceed `na_threshold`
        (the reference's qa_na_threshold, default -2.75).
    """
    by_example = collections.defaultdict(list)
    for f, window in enumerate(features.windows):
        by_example[window.example_index].append(f)
    result = QAPredictions({}, {}, {}, {})
    for ex_index, example in enumerate(examples):
        doc, spans = features.documents[ex_index], features.spans[ex_index]
        prelim, null_score = [], None
        for f in by_example[ex_index]:
            window = features.windows[f]
            if "answerable_logit" in outputs:
                feature_null = float(outputs["answerable_logit"][f])
            elif "start_logits" in outputs:
                feature_null = float(outputs["start_logits"][f][0] + outputs["end_logits"][f][0])
            else:
                feature_null = None
            if feature_null is not None and (null_score is None or feature_null < null_score):
                null_score = feature_null
            last = window.offset + window.length - 1
            for start, end, start_score, end_score in _candidates(outputs, f, n_best_size):
                if not (
                    window.offset <= start <= end <= last and end - start + 1 <= max_answer_length
                ):
                    continue
                doc_start = window.doc_start + start - window.offset
                if not is_max_context(spans, window.span_index, doc_start):
                    continue
                doc_end = window.doc_start + end - window.offset
                prelim.append((start_score + end_score, start_score, end_score, doc_start, doc_end))
        prelim.sort(key=lambda p: p[0], reverse=True)
        nbest, seen = [], set()
        for _, start_score, end_score, doc_start, doc_end in prelim:
            if len(nbest) >= n_best_size:
                break
            text = example.doc.context[doc.char_spans[doc_start][0] : doc.char_spans[doc_end][1]]
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": start_score, "end_logit": end_score})
        if not nbest:
            nbest.append({"text": "empty", "start_logit": 0.0, "end_logit": 0.0})
        for entry, probability in zip(
            nbest, _softmax([e["start_logit"] + e["end_logit"] for e in nbest])
        ):
            entry["probability"] = float(probability)
        qid = example.qas_id
        best = next(e for e in nbest if e["text"])
        result.nbest[qid] = nbest
        result.best_non_null[qid] = best["text"]
        if not version_2:
            result.predictions[qid] = nbest[0]["text"]
            continue
        if null_score is None:
            raise ValueError("SQuAD 2.0 decoding needs start/end logits or an answerable_logit")
        odds = (
            null_score
            if "answerable_logit" in outputs
            else (null_score - best["start_logit"] - best["end_logit"])
        )
        result.null_odds[qid] = odds
        result.predictions[qid] = "" if odds > na_threshold else best["text"]
    return result
