"""Evaluation metrics of the fine-tuning benchmarks, as their official scripts define them.

Every score is a percentage (0-100), the scale the reference ELECTRA scorers and the official
evaluation scripts report.

* Sentence-level (classification / regression): `accuracy`, `f1` (binary, positive class 1, as
  GLUE's MRPC/QQP), `f1_macro`, `mcc` (CoLA), `pearson_spearman` and `mse` (STS-B, KorSTS); `sentence_scores`
  computes several by name. scikit-learn and scipy do the arithmetic.
* SQuAD 1.1 and 2.0 (`squad_v1_evaluate`, `squad_v2_evaluate`): the official answer normalisation
  (lower case, drop ASCII punctuation and the articles a/an/the, collapse whitespace), token F1, and
  for 2.0 the no-answer handling and the best-threshold search over null odds.
* MRQA 2019 (`mrqa_evaluate`): the shared task's official script as the reference calls it:
  SQuAD 1.1's normalisation, EM and F1 against all gold answers, but questions without a
  prediction are left out of the totals rather than scored 0.
* KorQuAD 1.0 (`korquad_evaluate`): the official script (SQuAD 1.1 plus a few removed brackets and
  quotes, F1 over characters).
* CMRC 2018 / DRCD (`cmrc_evaluate`): the official mixed segmentation: each Chinese character is a
  token, runs of other characters are word-tokenised, the script's punctuation list is removed.
* Entity-level F1 for tagging (`entity_f1`): micro precision/recall/F1 over exact (type, span)
  matches, with spans read by seqeval's default (conlleval) mode (`get_entities`) or by the
  reference ELECTRA's `tagging_utils.get_span_labels` (`reference_entities`).
"""

import collections
import re
import string

import numpy as np
import scipy.stats
import sklearn.metrics

__all__ = [
    "QA_METRICS",
    "SENTENCE_METRICS",
    "accuracy",
    "cmrc_evaluate",
    "cmrc_exact",
    "cmrc_f1",
    "entity_f1",
    "f1",
    "f1_macro",
    "get_entities",
    "korquad_evaluate",
    "mcc",
    "mixed_segmentation",
    "mrqa_evaluate",
    "pearson_spearman",
    "qa_scores",
    "reference_entities",
    "sentence_scores",
    "squad_exact",
    "squad_f1",
    "squad_normalize",
    "squad_v1_evaluate",
    "squad_v2_evaluate",
]


# ----- sentence level ---------------------------------------------------------------------------


def accuracy(labels, predictions):
    return {"accuracy": 100.0 * sklearn.metrics.accuracy_score(labels, predictions)}


def f1(labels, predictions):
    """Binary F1 of class 1 (GLUE MRPC/QQP), with precision and recall."""
    p, r, f, _ = sklearn.metrics.precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    return {"precision": 100.0 * p, "recall": 100.0 * r, "f1": 100.0 * f}


def f1_macro(labels, predictions):
    """Unweighted mean of the per-class F1 (Korean hate speech)."""
    return {
        "f1_macro": 100.0
        * sklearn.metrics.f1_score(labels, predictions, average="macro", zero_division=0)
    }


def mcc(labels, predictions):
    """Matthews correlation coefficient (CoLA)."""
    return {"mcc": 100.0 * sklearn.metrics.matthews_corrcoef(labels, predictions)}


def pearson_spearman(targets, predictions):
    """Pearson and Spearman correlation of real-valued predictions (STS-B, KorSTS)."""
    targets = np.asarray(targets, dtype=np.float64).ravel()
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    return {
        "pearson": 100.0 * scipy.stats.pearsonr(targets, predictions)[0],
        "spearman": 100.0 * scipy.stats.spearmanr(targets, predictions)[0],
    }


def mse(targets, predictions):
    """Mean squared error in the task's own units (the reference's RegressionScorer reports it)."""
    targets = np.asarray(targets, dtype=np.float64).ravel()
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    return {"mse": float(np.mean((targets - predictions) ** 2))}


SENTENCE_METRICS = {
    "accuracy": accuracy,
    "mse": mse,
    "f1": f1,
    "f1_macro": f1_macro,
    "mcc": mcc,
    "pearson_spearman": pearson_spearman,
}


def sentence_scores(metric_names, labels, predictions):
    """Merged results of the named sentence-level metrics (label ids or regression values)."""
    scores = {}
    for name in metric_names:
        if name not in SENTENCE_METRICS:
            raise ValueError(
                f"Unknown sentence-level metric {name!r}; known: {sorted(SENTENCE_METRICS)}"
            )
        scores.update(SENTENCE_METRICS[name](labels, predictions))
    return scores


# ----- SQuAD ------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text):
    """The official SQuAD answer normalisation: lower, drop punctuation and articles, fix spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(gold, prediction):
    return int(squad_normalize(gold) == squad_normalize(prediction))


def squad_f1(gold, prediction, version_2=False):
    """Token-overlap F1; SQuAD 2.0 scores two empty (no-answer) strings as 1, 1.1 as 0."""
    gold_tokens = squad_normalize(gold).split()
    pred_tokens = squad_normalize(prediction).split()
    if version_2 and (not gold_tokens or not pred_tokens):
        return float(gold_tokens == pred_tokens)
    return _overlap_f1(gold_tokens, pred_tokens)


def _overlap_f1(gold_items, pred_items, same=None):
    """Harmonic mean of precision and recall of `same` shared items (default: the multiset
    intersection of the two lists), as the official SQuAD, KorQuAD and CMRC scripts."""
    if same is None:
        same = sum((collections.Counter(gold_items) & collections.Counter(pred_items)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_items), same / len(gold_items)
    return 2 * precision * recall / (precision + recall)


def squad_v1_evaluate(gold, predictions):
    """SQuAD 1.1 official scores; a question without a prediction scores 0.

    Args:
      gold: {question id: [gold answer texts]}.
      predictions: {question id: predicted text}.
    """
    exact = f1_sum = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact += max(squad_exact(a, pred) for a in answers)
        f1_sum += max(squad_f1(a, pred) for a in answers)
    return {"exact_match": 100.0 * exact / len(gold), "f1": 100.0 * f1_sum / len(gold)}


def squad_v2_evaluate(gold, predictions, na_probs=None, na_prob_thresh=1.0):
    """SQuAD 2.0 official scores, with the HasAns/NoAns breakdown and the best-threshold search.

    Args:
      gold: {question id: [gold answer texts]}; an empty list marks an unanswerable question.
      predictions: {question id: predicted text} ("" predicts no answer); questions without a
        prediction are left out of the totals, as the official script does.
      na_probs: optional {question id: no-answer score} (ELECTRA writes null odds here); a question
        is answered "" when its score exceeds `na_prob_thresh` (ELECTRA's `qa_na_threshold`). When
        given, the result also holds the best achievable exact/F1 and their thresholds.
    """
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        answers = [a for a in answers if squad_normalize(a)] or [""]
        exact_raw[qid] = max(squad_exact(a, predictions[qid]) for a in answers)
        f1_raw[qid] = max(squad_f1(a, predictions[qid], version_2=True) for a in answers)
    given_na_probs = na_probs is not None
    if not given_na_probs:
        na_probs = {qid: 0.0 for qid in predictions}

    def thresholded(raw):
        return {
            qid: float(not has_answer[qid]) if na_probs[qid] > na_prob_thresh else score
            for qid, score in raw.items()
        }

    exact_t, f1_t = thresholded(exact_raw), thresholded(f1_raw)

    def summary(qids, prefix=""):
        return {
            f"{prefix}exact": 100.0 * sum(exact_t[q] for q in qids) / len(qids),
            f"{prefix}f1": 100.0 * sum(f1_t[q] for q in qids) / len(qids),
            f"{prefix}total": len(qids),
        }

    result = summary(list(exact_t))
    for prefix, wanted in (("HasAns_", True), ("NoAns_", False)):
        qids = [q for q in exact_t if has_answer[q] == wanted]
        if qids:
            result.update(summary(qids, prefix))
    if given_na_probs:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            result[f"best_{name}"], result[f"best_{name}_thresh"] = _best_threshold(
                predictions, raw, na_probs, has_answer
            )
    return result


def _best_threshold(predictions, raw_scores, na_probs, has_answer):
    """The official search: sweep the threshold up through the sorted no-answer scores."""
    score = best = sum(1 for qid in has_answer if not has_answer[qid])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in raw_scores:
            continue
        if has_answer[qid]:
            score += raw_scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / len(raw_scores), best_thresh


# ----- MRQA 2019 --------------------------------------------------------------------------------


def mrqa_evaluate(gold, predictions):
    """MRQA 2019 official scores with the reference's `skip_no_answer=True`: the mean over the
    questions that have a prediction (in debug mode the reference predicts only the first lines).

    Args:
      gold: {question id: [gold answer texts]} (MRQA's "answers" of each "qid").
      predictions: {question id: predicted text}.
    """
    scored = [qid for qid in gold if qid in predictions]
    if not scored:
        raise ValueError(
            "MRQA evaluation: none of the gold questions has a prediction; check that the "
            "predictions are keyed by the MRQA qid."
        )
    exact = sum(max(squad_exact(a, predictions[q]) for a in gold[q]) for q in scored)
    f1_sum = sum(max(squad_f1(a, predictions[q]) for a in gold[q]) for q in scored)
    return {"exact_match": 100.0 * exact / len(scored), "f1": 100.0 * f1_sum / len(scored)}


# ----- KorQuAD 1.0 ------------------------------------------------------------------------------

_KORQUAD_REMOVED = re.compile("['\"《》<>〈〉()‘’]")


def _korquad_normalize(text):
    text = _KORQUAD_REMOVED.sub(" ", text).lower()
    return " ".join("".join(ch for ch in text if ch not in _ASCII_PUNCTUATION).split())


def _korquad_f1(gold, prediction):
    """F1 over the characters of the normalised texts (spaces left out)."""
    pred_chars = list(_korquad_normalize(prediction).replace(" ", ""))
    gold_chars = list(_korquad_normalize(gold).replace(" ", ""))
    return _overlap_f1(gold_chars, pred_chars)


def korquad_evaluate(gold, predictions):
    """KorQuAD 1.0 official EM / character F1 ({id: [answers]}, {id: text}); missing scores 0."""
    exact = f1_sum = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact += max(float(_korquad_normalize(a) == _korquad_normalize(pred)) for a in answers)
        f1_sum += max(_korquad_f1(a, pred) for a in answers)
    return {"exact_match": 100.0 * exact / len(gold), "f1": 100.0 * f1_sum / len(gold)}


# ----- CMRC 2018 / DRCD -------------------------------------------------------------------------

# The official script's list. Its "……" entry is two characters long and so never matches one
# character; ASCII punctuation other than these is kept and becomes separate tokens.
_CMRC_PUNCTUATION = frozenset(
    [
        "-",
        ":",
        "_",
        "*",
        "^",
        "/",
        "\\",
        "~",
        "`",
        "+",
        "=",
        "，",
        "。",
        "：",
        "？",
        "！",
        "“",
        "”",
        "；",
        "’",
        "《",
        "》",
        "……",
        "·",
        "、",
        "「",
        "」",
        "（",
        "）",
        "－",
        "～",
        "『",
        "』",
    ]
)
# Stands in for nltk.word_tokenize on the non-Chinese runs (nltk is not a dependency): numbers
# with inner separators and words stay whole, every other non-space character is a token.
_ENGLISH_TOKEN = re.compile(r"\d+(?:[.,]\d+)+\w*|\w+|[^\w\s]")


def _is_cmrc_chinese(char):
    return "\u4e00" <= char <= "\u9fa5"


def mixed_segmentation(text, remove_punctuation=False):
    """CMRC 2018 segmentation: lower-cased; each Chinese character and listed punctuation a token."""
    segments, run = [], ""
    for char in text.lower().strip():
        if remove_punctuation and char in _CMRC_PUNCTUATION:
            continue
        if _is_cmrc_chinese(char) or char in _CMRC_PUNCTUATION:
            segments.extend(_ENGLISH_TOKEN.findall(run))
            run = ""
            segments.append(char)
        else:
            run += char
    segments.extend(_ENGLISH_TOKEN.findall(run))
    return segments


def _longest_common_substring(a, b):
    """Length of the longest contiguous common run of two token lists."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(answers, prediction):
    """Best F1 over the answers, from the longest common run of mixed segments."""
    pred_segments = mixed_segmentation(prediction, remove_punctuation=True)
    scores = [0.0]
    for answer in answers:
        gold_segments = mixed_segmentation(answer, remove_punctuation=True)
        same = _longest_common_substring(gold_segments, pred_segments)
        scores.append(_overlap_f1(gold_segments, pred_segments, same))
    return max(scores)


def _cmrc_strip(text):
    return "".join(ch for ch in text.lower().strip() if ch not in _CMRC_PUNCTUATION)


def cmrc_exact(answers, prediction):
    return float(any(_cmrc_strip(a) == _cmrc_strip(prediction) for a in answers))


def cmrc_evaluate(gold, predictions):
    """CMRC 2018 / DRCD official scores ({id: [answers]}, {id: text}); missing scores 0."""
    f1_sum = exact = 0.0
    skipped = 0
    for qid, answers in gold.items():
        if qid not in predictions:
            skipped += 1
            continue
        f1_sum += cmrc_f1(answers, predictions[qid])
        exact += cmrc_exact(answers, predictions[qid])
    f1_score, em = 100.0 * f1_sum / len(gold), 100.0 * exact / len(gold)
    return {
        "exact_match": em,
        "f1": f1_score,
        "average": (em + f1_score) / 2,
        "total": len(gold),
        "skip": skipped,
    }


QA_METRICS = {
    "squad_v1": squad_v1_evaluate,
    "squad_v2": squad_v2_evaluate,
    "mrqa": mrqa_evaluate,
    "korquad": korquad_evaluate,
    "cmrc": cmrc_evaluate,
}


def qa_scores(metric_name, gold, predictions, null_odds=None, na_threshold=-2.75):
    """One QA metric by name (a task's `metrics` entry).

    Args:
      gold: {question id: [gold answer texts]}, i.e. `{ex.qas_id: ex.answers for ex in examples}`.
      predictions: {question id: text}; for "squad_v2" give the best non-null spans together with
        `null_odds` and `na_threshold` (the reference's qa_na_threshold), as the reference hands
        them to the official script.
    """
    if metric_name not in QA_METRICS:
        raise ValueError(f"Unknown QA metric {metric_name!r}; known: {sorted(QA_METRICS)}")
    if metric_name == "squad_v2":
        return squad_v2_evaluate(gold, predictions, null_odds, na_threshold)
    return QA_METRICS[metric_name](gold, predictions)


# ----- entity-level F1 (seqeval, reference) -----------------------------------------------------


def _split_tag(tag):
    """ "B-PER" -> ("B", "PER"); a tag without a type gets seqeval's "_"."""
    return tag[0], tag[1:].split("-", 1)[-1] or "_"


def _chunk_ends(prev_tag, tag, prev_type, type_):
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag not in ("O", ".") and prev_type != type_)
    )


def _chunk_starts(prev_tag, tag, prev_type, type_):
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != type_)
    )


def get_entities(tags):
    """(type, first, last) chunks of one tag sequence (prefix style, BIO or BIOES), as seqeval.

    seqeval's default mode: an I- or E- tag after O, after E/S or after a different type starts a
    chunk; a type change or O ends one.
    """
    chunks, prev_tag, prev_type, begin = [], "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        tag, type_ = _split_tag(tag)
        if _chunk_ends(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def reference_entities(tags):
    """(type, first, last) spans as the reference ELECTRA reads tags (`get_span_labels`).

    Its rule differs from seqeval's on ill-formed sequences: a span starts at B-, S- or any tag
    after O and ends only before O, B- or S-, so I-/E- tags of another type (or after an E-) extend
    the open span, which takes the type of its last tag: "B-PER I-LOC" is one LOC span. Every
    non-O tag needs a type after its first "-" (the reference also fails without one; unlike it,
    types may contain "-"). An empty sequence has no spans (the reference fails on it).
    """
    spans, begin, prev = [], 0, "O"
    for i, tag in enumerate(tags):
        position = "O" if tag == "O" else _reference_split(tag)[0]
        if prev != "O" and position in ("O", "B", "S"):
            spans.append((_reference_split(prev)[1], begin, i - 1))
        if prev == "O" or position in ("B", "S"):
            begin = i
        prev = tag
    if prev != "O":
        spans.append((_reference_split(prev)[1], begin, len(tags) - 1))
    return spans


def _reference_split(tag):
    position, dash, type_ = tag.partition("-")
    if not (dash and type_):
        raise ValueError(
            f"Tag {tag!r} has no entity type: the reference's span reading (tagging_reference) "
            "needs tags such as B-NP; write the type after the position."
        )
    return position, type_


def entity_f1(true_sequences, pred_sequences, reference=False):
    """Micro precision/recall/F1 of exact (type, span) entity matches over all sentences.

    Spans are read by seqeval's rule (`get_entities`), or by the reference's
    (`reference_entities`) with `reference`; the counting is the same in both (the reference's
    `EntityLevelF1Scorer`: spans as per-sentence sets, all 0 when none is right).
    """
    read = reference_entities if reference else get_entities
    n_true = n_pred = n_correct = 0
    for true_tags, pred_tags in zip(true_sequences, pred_sequences, strict=True):
        true_set, pred_set = set(read(true_tags)), set(read(pred_tags))
        n_true += len(true_set)
        n_pred += len(pred_set)
        n_correct += len(true_set & pred_set)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * score}
