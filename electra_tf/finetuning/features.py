"""Examples -> fixed-length model inputs (numpy arrays), as the reference featurizes them.

Every kind gives "input_ids", "input_mask", "segment_ids" [N, max_seq_length] int32 and "eid" [N]
int32, plus:

* classification: "label_ids" [N] int32 (index in `task.label_list`; 0 for unlabeled test data).
* regression: "targets" [N] float32, scaled to [0, 1] by the task's range as the reference does.
* tagging: "label_ids" [N, max_seq_length] int32, the word's label at the first sub-token of each
  word and 0 elsewhere, and "label_weights" [N, max_seq_length] float32, 1 at those first
  sub-tokens and 0 elsewhere ([CLS], [SEP], later sub-tokens, padding); `word_values` maps
  token-level arrays back to words. The task's `tagging_reference` picks the reference's segment
  ids, truncation and span reading (`tagging_features`).
* span_qa: `qa.qa_features` (windows over long contexts).

`featurize(task, examples, tokenizer, ...)` picks the right one for a task.
"""

import numpy as np

from electra_tf.finetuning import metrics, qa


def truncate_pair(tokens_a, tokens_b, max_length):
    """The reference's rule: drop the last token of the longer sequence until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def _pad_rows(rows, max_seq_length):
    """[CLS]... id lists -> (input_ids, input_mask) padded with 0 to max_seq_length."""
    ids = np.zeros((len(rows), max_seq_length), dtype=np.int32)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def sentence_features(examples, tokenizer, max_seq_length, label_list=None, regression_range=None):
    """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (segment 1 for b and its [SEP]).

    Give `label_list` for classification or `regression_range` (min, max) for regression.
    """
    cls_id, sep_id = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    ids_a = tokenizer.encode_batch([ex.text_a for ex in examples])
    ids_b = tokenizer.encode_batch([ex.text_b or "" for ex in examples])
    rows, segments = [], np.zeros((len(examples), max_seq_length), dtype=np.int32)
    for i, (a, b) in enumerate(zip(ids_a, ids_b)):
        if b:
            truncate_pair(a, b, max_seq_length - 3)
            segments[i, len(a) + 2 : len(a) + len(b) + 3] = 1
            rows.append([cls_id] + a + [sep_id] + b + [sep_id])
        else:
            rows.append([cls_id] + a[: max_seq_length - 2] + [sep_id])
    input_ids, input_mask = _pad_rows(rows, max_seq_length)
    arrays = {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segments,
        "eid": np.array([ex.eid for ex in examples], dtype=np.int32),
    }
    if label_list is not None:
        label_map = {label: i for i, label in enumerate(label_list)}
        unknown = {ex.label for ex in examples if ex.label is not None} - set(label_map)
        if unknown:
            raise ValueError(f"Labels {sorted(unknown)} are not in the task's labels {label_list}")
        arrays["label_ids"] = np.array(
            [0 if ex.label is None else label_map[ex.label] for ex in examples], dtype=np.int32
        )
    elif regression_range is not None:
        low, high = regression_range
        values = np.array([low if ex.label is None else ex.label for ex in examples], np.float32)
        if values.size and (values.min() < low or values.max() > high):
            raise ValueError(f"Regression targets outside the task's range {regression_range}")
        arrays["targets"] = (values - low) / (high - low)
    return arrays


def encode_tags(tags, scheme, reference=False):
    """Re-encodes a prefix-style tag sequence (any of BIO/BIOES) in `scheme` ("BIO" or "BIOES").

    Entities are read with seqeval's rules (`metrics.get_entities`), or the reference's
    (`metrics.reference_entities`) with `reference`, so training labels and the entity-level
    evaluation agree on what the spans are.
    """
    read = metrics.reference_entities if reference else metrics.get_entities
    out = ["O"] * len(tags)
    for type_, first, last in read(tags):
        for i in range(first, last + 1):
            out[i] = f"I-{type_}"
        out[first] = f"B-{type_}"
        if scheme == "BIOES":
            if first == last:
                out[first] = f"S-{type_}"
            else:
                out[last] = f"E-{type_}"
    return out


def _subtoken_cut(pieces, max_seq_length, cls_id, sep_id):
    """Ours: sub-tokens past max_seq_length - 2 are cut; a word is labeled when its first
    sub-token is kept. Returns ([CLS] ... [SEP] token ids, each labeled word's first position)."""
    row, firsts = [cls_id], []
    for ids in pieces:
        if len(row) < max_seq_length - 1:
            firsts.append(len(row))
        row += ids
    return row[: max_seq_length - 1] + [sep_id], firsts


def _reference_cut(pieces, max_seq_length, cls_id, sep_id, truncation_bug, eid):
    """The reference's whole-word truncation: a word is kept (with all its sub-tokens) while it and
    the closing [SEP] still fit; the rest of the sentence is cut. `truncation_bug` reproduces the
    released test, which charges the sentence's word count plus 2 in place of the next word's
    sub-tokens: long sentences lose words that would fit, one of more than max_seq_length - 3
    words is [SEP] alone, and a long word can pass max_seq_length (the reference's assertion
    fails; here a ValueError). Returns ([CLS] ... [SEP] token ids, each kept word's first
    position)."""
    charge = len(pieces) + 2 if truncation_bug else None
    if truncation_bug and charge + 1 > max_seq_length:
        return [sep_id], []
    row, firsts = [cls_id], []
    for ids in pieces:
        if len(row) + (charge or len(ids)) + 1 > max_seq_length:
            break
        firsts.append(len(row))
        row += ids
    if len(row) + 1 > max_seq_length:
        raise ValueError(
            f"Tagging example {eid}: the reference's truncation (tagging_truncation_reference_bug)"
            f" gives {len(row) + 1} tokens, over max_seq_length {max_seq_length}, where the "
            "reference fails its assertion; raise max_seq_length or set "
            "tagging_truncation_reference_bug to false."
        )
    return row + [sep_id], firsts


def tagging_features(
    examples,
    tokenizer,
    max_seq_length,
    label_list,
    scheme="BIOES",
    reference=False,
    truncation_bug=False,
):
    """Word-level tags aligned to each word's first sub-token.

    A word the tokenizer drops entirely (control characters only) becomes [UNK] so it keeps its
    label. Ours (default): segment id 0, sub-tokens past max_seq_length - 2 are cut, and with them
    the labels of words whose first sub-token is cut; entities read as seqeval reads them.
    `reference`: as google-research/electra's tagging tasks: segment id 1 on every real token,
    whole words cut (`_reference_cut`; `truncation_bug` its released test), entities read by
    `metrics.reference_entities`.
    """
    if truncation_bug and not reference:
        raise ValueError(
            "tagging_truncation_reference_bug reproduces the reference's truncation and needs "
            "tagging_reference true."
        )
    cls_id, sep_id, unk_id = (tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[UNK]"))
    label_map = {label: i for i, label in enumerate(label_list)}
    word_ids = iter(tokenizer.encode_batch([w for ex in examples for w in ex.words]))
    rows = []
    label_ids = np.zeros((len(examples), max_seq_length), dtype=np.int32)
    weights = np.zeros((len(examples), max_seq_length), dtype=np.float32)
    for i, example in enumerate(examples):
        pieces = [next(word_ids) or [unk_id] for _ in example.words]
        if reference:
            row, firsts = _reference_cut(
                pieces, max_seq_length, cls_id, sep_id, truncation_bug, example.eid
            )
        else:
            row, firsts = _subtoken_cut(pieces, max_seq_length, cls_id, sep_id)
        rows.append(row)
        tags = None if example.tags is None else encode_tags(example.tags, scheme, reference)
        for w, position in enumerate(firsts):
            if tags is not None:
                if tags[w] not in label_map:
                    raise ValueError(f"Tag {tags[w]!r} is not in the task's labels {label_list}")
                label_ids[i, position] = label_map[tags[w]]
            weights[i, position] = 1.0
    input_ids, input_mask = _pad_rows(rows, max_seq_length)
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": input_mask.copy() if reference else np.zeros_like(input_ids),
        "label_ids": label_ids,
        "label_weights": weights,
        "eid": np.array([ex.eid for ex in examples], np.int32),
    }


def word_values(token_values, label_weights):
    """Token-level [N, L] values (e.g. predicted label ids) -> one list per example, one per word."""
    return [list(values[weights > 0]) for values, weights in zip(token_values, label_weights)]


def featurize(task, examples, tokenizer, max_seq_length, doc_stride=128, max_query_length=64):
    """The task kind's features: a dict of arrays, or `qa.QAFeatures` for span QA."""
    if task.kind == "span_qa":
        return qa.qa_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    if task.kind == "tagging":
        return tagging_features(
            examples,
            tokenizer,
            max_seq_length,
            task.label_list,
            task.tag_scheme,
            task.tagging_reference,
            task.tagging_truncation_bug,
        )
    return sentence_features(
        examples,
        tokenizer,
        max_seq_length,
        label_list=task.label_list,
        regression_range=task.regression_range,
    )
