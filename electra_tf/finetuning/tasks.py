"""Fine-tuning tasks: a registry by name, each reading its benchmark's published file layout.

`get_task(name, data_dir=...)` returns a `Task` whose files live in
`<data_dir>/finetuning_data/<name>/` (the reference's `raw_data_dir`), or in `raw_dir` when given.
`task.get_examples(split)` reads one split:

* "classification" / "regression" -> `InputExample(eid, text_a, text_b, label)`; the label is the
  label string (None in unlabeled test files) or a float.
* "tagging" -> `TaggingExample(eid, words, tags)`, tags in prefix style ("B-PER"; Naver's
  "PER-B" is converted on reading). `label_list` is ours ("O", then B-/I-/E-/S- of every entity
  type) or, with `tagging_reference` (set by the runner from the config), the reference's (the
  tags seen in the split files, sorted).
* "span_qa" -> `qa.QAExample` (see `electra_tf.finetuning.qa`).

Built-in tasks; layouts follow google-research/electra (GLUE, SQuAD, chunking),
ymcui/Chinese-ELECTRA and the CLUE baselines (Chinese), monologg/KoELECTRA (Korean):

* GLUE: cola, sst, mrpc, sts, qqp, mnli, qnli, rte, wnli (the GLUE TSVs); squadv1, squadv2 (alias
  squad, the reference's name), `train.json`/`dev.json`; chunk (CoNLL-2000 `train.txt`/`dev.txt`,
  plus `test.txt` when present).
* MRQA 2019 shared task: newsqa, naturalqs, triviaqa, searchqa (`train.jsonl`/`dev.jsonl`, the
  shared task's files gunzipped), scored by the MRQA official evaluation.
* CLUE: afqmc, tnews, iflytek, cmnli, wsc, csl (`train.json`/`dev.json`/`test.json`, JSON lines);
  xnli-zh, lcqmc, bq, chnsenticorp (TSV); cmrc2018, drcd (SQuAD-format JSON).
* Korean: nsmc, kornli, korsts, question_pair, hate_speech, naver_ner, korquad.

Any other task needs no code: a JSON spec, either `task.json` in the task folder or a dict passed as
`spec` (run_finetuning passes `hparams[name]` when that is a dict). Keys (`SPEC_KEYS` per kind;
any other key is an error naming it and the spec's file):

* "kind" (required): "classification", "regression", "tagging" or "span_qa".
* "format": "tsv" (no quoting), "csv" or "jsonl" for sentence tasks; "conll" (word ... tag per
  line) or "word_tags" (`words<TAB>tags` per sentence) for tagging; "squad" or "mrqa" (MRQA 2019
  JSON lines) for span QA.
* "files": {split: file name}; default train/dev/test with the format's extension.
* "metric": a name or a list of names; default accuracy / pearson_spearman / entity_f1 /
  squad_v1 (squad_v2 with "version_2", mrqa for the "mrqa" format).
* sentence tasks: "text_a", "label" (required), "text_b": column indices, or column names with
  "header": true (TSV/CSV), or JSON keys; "labels" (classification, default: sorted train
  labels); "range": [min, max] (regression, default: the train min and max); "symmetric".
* tagging: "labels" (entity types, default: those in train), "tag_format": "prefix" (B-PER) or
  "suffix" (PER-B), "scheme": "BIOES" (default) or "BIO".
* span_qa: "version_2" (unanswerable questions; "squad" format only).

For example `{"kind": "classification", "format": "tsv", "header": true, "text_a": "question1",
"text_b": "question2", "label": "is_duplicate", "files": {"train": "train.tsv", "dev": "dev.tsv"}}`.
"""

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable

import tensorflow as tf
from absl import logging

from electra_tf import fileio
from electra_tf.finetuning import features, metrics, qa

KINDS = ("classification", "regression", "span_qa", "tagging")
TAG_SCHEMES = ("BIO", "BIOES")


@dataclasses.dataclass
class InputExample:
    """One sentence or sentence-pair example (classification or regression)."""

    eid: int
    text_a: str
    text_b: str | None = None
    label: object | None = None


@dataclasses.dataclass
class TaggingExample:
    """One sentence of words with one prefix-style tag per word (None when unlabeled)."""

    eid: int
    words: list
    tags: list | None = None


@dataclasses.dataclass(frozen=True)
class SplitFile:
    """One split: its file name and, for sentence tasks, how to pull fields from a record.

    `fields(record) -> (text_a, text_b, label)`, or None to skip the record. `header` drops the
    first row; `keyed` turns TSV/CSV rows into {column name: value} dicts using that header.
    """

    file: str
    fields: Callable | None = None
    header: bool = False
    keyed: bool = False


@dataclasses.dataclass
class Task:
    """A fine-tuning task: what it predicts, where its files are, how it is scored.

    Attributes:
      name: registry name; also the folder name under `<data_dir>/finetuning_data/`.
      kind: one of KINDS.
      format: file format: "tsv", "csv", "jsonl" (sentence tasks), "conll", "word_tags" (tagging)
        or "squad", "mrqa" (span QA).
      splits: {split name: SplitFile}; only the splits the benchmark publishes.
      metrics: metric names: keys of `metrics.SENTENCE_METRICS` or `metrics.QA_METRICS`, or
        "entity_f1" (`metrics.entity_f1`).
      labels: classification label strings in label-id order; for tagging, the entity types.
      regression_range: (min, max) of regression targets; features scale targets to [0, 1].
      symmetric: sentence-pair task whose label ignores order; `double_unordered` adds swapped pairs.
      version_2: span QA with unanswerable questions (SQuAD 2.0 style).
      tag_scheme: "BIOES" (the reference's training encoding) or "BIO".
      suffix_tags: the tagging files write "PER-B" rather than "B-PER".
      tagging_reference: tagging as the reference (the config's `tagging_reference`, set by the
        runner): labels are the tags seen in the split files, sorted (`label_list`), features and
        spans as `features.tagging_features` says; False: "O" then every tag of every type.
      tagging_truncation_bug: with tagging_reference, the reference's truncation bug (the config's
        `tagging_truncation_reference_bug`).
      raw_dir: the folder holding the split files.
      source: "built-in", or where the JSON spec came from.
    """

    name: str
    kind: str
    format: str
    splits: dict
    metrics: tuple
    labels: tuple | None = None
    regression_range: tuple | None = None
    symmetric: bool = False
    version_2: bool = False
    tag_scheme: str = "BIOES"
    suffix_tags: bool = False
    raw_dir: str | None = None
    source: str = "built-in"
    tagging_reference: bool = False
    tagging_truncation_bug: bool = False
    _seen_tags: list | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def eval_split(self):
        """ "dev", or "test" for benchmarks published without a dev set (NSMC, Naver NER, ...)."""
        return "dev" if "dev" in self.splits else "test"

    @property
    def label_list(self):
        """Label strings in id order (classification, tagging); None for regression and QA."""
        if self.kind == "tagging":
            return (
                self._seen_tag_labels()
                if self.tagging_reference
                else tag_labels(self.labels, self.tag_scheme)
            )
        return list(self.labels) if self.kind == "classification" else None

    def _seen_tag_labels(self):
        """The reference's label set: every tag (in the task's scheme, spans read as the reference
        reads them) of every split file present, sorted; read once. Unlike the reference, a tag
        whose type is not one of the task's entity types is an error, as without the switch."""
        if self._seen_tags is None:
            splits = self.existing_splits()
            if not splits:
                raise ValueError(
                    f"Task {self.name}: tagging_reference takes the labels from the tags of its "
                    f"split files, and none of {[self.path(s) for s in self.splits]} exists."
                )
            seen = set()
            for split in splits:
                for ex in self.get_examples(split):
                    seen.update(self._encoded_tags(ex, self.path(split)))
            self._seen_tags = sorted(seen)
        return list(self._seen_tags)

    def _encoded_tags(self, example, path):
        """The example's tags as the reference trains on them; errors name the file and sentence."""
        where = f"{path}, sentence {example.eid + 1}"
        try:
            tags = features.encode_tags(example.tags, self.tag_scheme, reference=True)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        for tag in tags:
            if tag != "O" and tag.partition("-")[2] not in self.labels:
                raise ValueError(
                    f"{where}: tag {tag!r} has a type that is not one of the task's entity types "
                    f'{list(self.labels)}; add it to the task spec\'s "labels".'
                )
        return tags

    def existing_splits(self):
        """The published splits whose files are present in `raw_dir`."""
        return [split for split in self.splits if tf.io.gfile.exists(self.path(split))]

    def path(self, split):
        if split not in self.splits:
            raise ValueError(
                f"Task {self.name} has no split {split!r}; it has {sorted(self.splits)}."
            )
        return fileio.join(self.raw_dir, self.splits[split].file)

    def get_examples(self, split, double_unordered=False):
        """Reads one split. `double_unordered` (training only) appends the (b, a) swap of every pair
        of a symmetric task, as the reference does for MRPC and STS-B."""
        if self.kind == "span_qa" and self.format == "mrqa":
            return qa.read_mrqa(self.path(split), is_training=split == "train")
        if self.kind == "span_qa":
            return qa.read_squad(
                self.path(split), version_2=self.version_2, is_training=split == "train"
            )
        if self.kind == "tagging":
            return _read_tagging(self.path(split), self.format, self.suffix_tags)
        examples = _read_sentences(self, split)
        if double_unordered and self.symmetric and split == "train":
            examples += [
                InputExample(len(examples) + i, ex.text_b, ex.text_a, ex.label)
                for i, ex in enumerate(examples)
                if ex.text_b is not None
            ]
        return examples


def tag_labels(entity_types, scheme):
    """Label strings of a tag scheme: "O", then B-/I-(/E-/S-) for each type."""
    if scheme not in TAG_SCHEMES:
        raise ValueError(f"Unknown tag scheme {scheme!r}; use one of {TAG_SCHEMES}.")
    prefixes = [p for p in scheme if p != "O"]
    return ["O"] + [f"{p}-{t}" for t in entity_types for p in prefixes]


# ----- reading ----------------------------------------------------------------------------------


def _read_text(path):
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Fine-tuning data file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().decode("utf-8")


def _lines(path):
    """The file's lines, split at newlines only (str.splitlines would also split at U+2028...)."""
    return [line.rstrip("\r") for line in _read_text(path).split("\n")]


def _read_records(path, fmt):
    """TSV (no quoting, like the reference's read_tsv), CSV (standard quoting) or JSON lines."""
    if fmt == "jsonl":
        return [json.loads(line) for line in _lines(path) if line.strip()]
    stream = io.StringIO(_read_text(path), newline="")
    if fmt == "tsv":
        return list(csv.reader(stream, delimiter="\t", quotechar=None))
    return list(csv.reader(stream))


def _read_sentences(task, split):
    """Sentence(-pair) examples; malformed records are skipped with a warning, as the reference."""
    source = task.splits[split]
    records = _read_records(task.path(split), task.format)
    if source.header and task.format != "jsonl":
        names, records = records[0], records[1:]
        if source.keyed:
            records = [dict(zip(names, row)) for row in records]
    examples, bad = [], 0
    for record in records:
        try:
            fields = source.fields(record)
        except (IndexError, KeyError, TypeError):
            bad += 1
            continue
        if fields is None:
            continue
        text_a, text_b, label = fields
        if label is not None:
            label = float(label) if task.kind == "regression" else str(label)
        examples.append(InputExample(len(examples), text_a, text_b, label))
    if bad:
        logging.warning("%s/%s: skipped %d malformed records", task.name, split, bad)
    return examples


def _prefix_style(tag):
    """ "PER-B" -> "B-PER" (Naver NER writes the position after the type)."""
    if tag == "O":
        return tag
    type_, _, position = tag.rpartition("-")
    return f"{position}-{type_}"


def _read_tagging(path, fmt, suffix_tags):
    """CoNLL (word ... tag per line, blank line between sentences) or `words<TAB>tags` per line."""
    sentences = []
    if fmt == "word_tags":
        for line in _lines(path):
            if line.strip():
                words, tags = line.split("\t")
                sentences.append((words.split(), tags.split()))
    else:
        words, tags = [], []
        for line in _lines(path) + [""]:
            parts = line.split()
            if not parts:
                if words:
                    sentences.append((words, tags))
                    words, tags = [], []
            elif parts[0] != "-DOCSTART-":
                words.append(parts[0])
                tags.append(parts[-1])
    for words, tags in sentences:
        if len(words) != len(tags):
            raise ValueError(
                f"{path}: {len(words)} words but {len(tags)} tags in {' '.join(words)!r}"
            )
    return [
        TaggingExample(i, words, [_prefix_style(t) for t in tags] if suffix_tags else tags)
        for i, (words, tags) in enumerate(sentences)
    ]


# ----- built-in tasks ---------------------------------------------------------------------------


def _columns(text_a, text_b=None, label=None):
    """Fields by column index (TSV rows) or key (JSON objects)."""

    def fields(record):
        return (
            record[text_a],
            None if text_b is None else record[text_b],
            None if label is None else record[label],
        )

    return fields


def _skip_dash(fields):
    """Drops records labeled "-" (annotators disagreed), as the CLUE CMNLI baseline."""

    def checked(record):
        text_a, text_b, label = fields(record)
        return None if label == "-" else (text_a, text_b, label)

    return checked


def _nonempty_pair(fields):
    """Drops pairs with an empty side, as KoELECTRA's question-pair reader."""

    def checked(record):
        text_a, text_b, label = fields(record)
        return (text_a, text_b, label) if text_a and text_b else None

    return checked


def _csl_fields(record):
    """CSL: the keywords (joined by spaces) paired with the abstract, as the CLUE baseline."""
    return " ".join(record["keyword"]), record["abst"], record.get("label")


def _wsc_fields(record):
    """CLUEWSC: marks the candidate with _ _ and the pronoun with [ ], as the CLUE baseline."""
    text, target = record["text"], record["target"]
    marks = [
        (target["span1_index"], target["span1_text"], "_", "_"),
        (target["span2_index"], target["span2_text"], "[", "]"),
    ]
    for index, span, _, _ in marks:
        if text[index : index + len(span)] != span:
            raise ValueError(f"CLUEWSC span {span!r} is not at offset {index} of {text!r}")
    for index, span, left, right in sorted(marks, reverse=True):
        text = text[:index] + left + span + right + text[index + len(span) :]
    return text, None, record.get("label")


def _xnli_eval_fields(record):
    """XNLI 1.0 dev/test TSV: keep Chinese rows; sentence1/2 in columns 6/7, gold label in 1."""
    return (record[6], record[7], record[1]) if record[0] == "zh" else None


def _xnli_train_fields(record):
    """XNLI-MT's Chinese MultiNLI train file writes "contradictory" for "contradiction"."""
    label = "contradiction" if record[2] == "contradictory" else record[2]
    return record[0], record[1], label


def _task(name, kind, fmt, splits, metric_names, **kwargs):
    return Task(
        name=name,
        kind=kind,
        format=fmt,
        splits={split: SplitFile(*source) for split, source in splits.items()},
        metrics=tuple(metric_names),
        **kwargs,
    )


def _sts_task(name, splits):
    """An STS-B-style task: sentence pairs (either order) scored 0-5, Pearson/Spearman and MSE."""
    return _task(
        name,
        "regression",
        "tsv",
        splits,
        ("pearson_spearman", "mse"),
        regression_range=(0.0, 5.0),
        symmetric=True,
    )


def _paraphrase_task(name, splits, **kwargs):
    """A GLUE paraphrase task (MRPC, QQP): sentence pairs labelled 0/1, accuracy and F1."""
    return _task(
        name, "classification", "tsv", splits, ("accuracy", "f1"), labels=_BINARY, **kwargs
    )


def _three(fields, test_fields=None, ext="tsv", header=True):
    """train/dev/test.<ext> with the same header flag; test may have its own fields."""
    return {
        "train": (f"train.{ext}", fields, header),
        "dev": (f"dev.{ext}", fields, header),
        "test": (f"test.{ext}", test_fields or fields, header),
    }


def _files(fields, header=True, **names):
    """{split: its file} with the same fields and header flag for every split."""
    return {split: (name, fields, header) for split, name in names.items()}


_BINARY = ("0", "1")
_NLI = ("contradiction", "entailment", "neutral")
_CHUNK_TYPES = ("ADJP", "ADVP", "CONJP", "INTJ", "LST", "NP", "PP", "PRT", "SBAR", "UCP", "VP")
# The 14 entity types of KoELECTRA's Naver NER label list.
_NAVER_TYPES = (
    "PER",
    "FLD",
    "AFW",
    "ORG",
    "LOC",
    "CVL",
    "DAT",
    "TIM",
    "NUM",
    "EVT",
    "ANM",
    "PLT",
    "MAT",
    "TRM",
)


def _builtin_tasks():
    """Task templates (raw_dir unset) for every built-in benchmark."""
    cls, acc = "classification", ("accuracy",)
    mnli_fields = _columns(8, 9, -1)
    rte_fields = _three(_columns(1, 2, 3), _columns(1, 2))
    nli_pairs = _three(
        _skip_dash(_columns("sentence1", "sentence2", "label")),
        _columns("sentence1", "sentence2"),
        ext="json",
    )
    tasks = [
        # GLUE, with the reference's column choices (test files carry no labels).
        _task(
            "cola",
            cls,
            "tsv",
            {
                "train": ("train.tsv", _columns(3, label=1)),
                "dev": ("dev.tsv", _columns(3, label=1)),
                "test": ("test.tsv", _columns(1), True),
            },
            ("mcc",),
            labels=_BINARY,
        ),
        _task("sst", cls, "tsv", _three(_columns(0, label=1), _columns(1)), acc, labels=_BINARY),
        _paraphrase_task("mrpc", _three(_columns(3, 4, 0), _columns(3, 4)), symmetric=True),
        _sts_task("sts", _three(_columns(-3, -2, -1), _columns(-2, -1))),
        _paraphrase_task("qqp", _three(_columns(3, 4, 5), _columns(1, 2))),
        _task(
            "mnli",
            cls,
            "tsv",
            {
                "train": ("train.tsv", mnli_fields, True),
                "dev": ("dev_matched.tsv", mnli_fields, True),
                "dev_mismatched": ("dev_mismatched.tsv", mnli_fields, True),
                "test": ("test_matched.tsv", _columns(8, 9), True),
                "test_mismatched": ("test_mismatched.tsv", _columns(8, 9), True),
                "diagnostic": ("diagnostic.tsv", _columns(1, 2), True),
            },
            acc,
            labels=_NLI,
        ),
        _task("qnli", cls, "tsv", rte_fields, acc, labels=("entailment", "not_entailment")),
        _task("rte", cls, "tsv", rte_fields, acc, labels=("entailment", "not_entailment")),
        # Not in the reference; GLUE's WNLI TSVs have RTE's columns (index, sentence1/2, label).
        _task("wnli", cls, "tsv", rte_fields, acc, labels=_BINARY),
        _squad_task("squadv1", "squad_v1"),
        _squad_task("squadv2", "squad_v2", version_2=True),
        _squad_task("squad", "squad_v2", version_2=True),
        # The MRQA 2019 shared task's in-domain sets the reference fine-tunes on.
        *(_mrqa_task(name) for name in ("newsqa", "naturalqs", "triviaqa", "searchqa")),
        _task(
            "chunk",
            "tagging",
            "conll",
            {"train": ("train.txt",), "dev": ("dev.txt",), "test": ("test.txt",)},
            ("entity_f1",),
            labels=_CHUNK_TYPES,
        ),
        # CLUE JSON lines; test files carry no labels.
        _task(
            "afqmc",
            cls,
            "jsonl",
            _three(
                _columns("sentence1", "sentence2", "label"),
                _columns("sentence1", "sentence2"),
                ext="json",
            ),
            acc,
            labels=_BINARY,
            symmetric=True,
        ),
        _task(
            "tnews",
            cls,
            "jsonl",
            _three(_columns("sentence", label="label"), _columns("sentence"), ext="json"),
            acc,
            labels=tuple(str(100 + i) for i in range(17) if i not in (5, 11)),
        ),
        _task(
            "iflytek",
            cls,
            "jsonl",
            _three(_columns("sentence", label="label"), _columns("sentence"), ext="json"),
            acc,
            labels=tuple(str(i) for i in range(119)),
        ),
        _task("cmnli", cls, "jsonl", nli_pairs, acc, labels=_NLI),
        # CLUE 1.1's OCNLI: as CMNLI, examples without a gold label ("-") skipped.
        _task("ocnli", cls, "jsonl", nli_pairs, acc, labels=_NLI),
        _task("wsc", cls, "jsonl", _three(_wsc_fields, ext="json"), acc, labels=("true", "false")),
        _task("csl", cls, "jsonl", _three(_csl_fields, ext="json"), acc, labels=_BINARY),
        # Chinese-ELECTRA's TSV layouts (all with a header row).
        _task(
            "xnli-zh",
            cls,
            "tsv",
            _three(_xnli_eval_fields) | {"train": ("train.tsv", _xnli_train_fields, True)},
            acc,
            labels=_NLI,
        ),
        _task("lcqmc", cls, "tsv", _three(_columns(0, 1, 2)), acc, labels=_BINARY, symmetric=True),
        _task("bq", cls, "tsv", _three(_columns(0, 1, 2)), acc, labels=_BINARY, symmetric=True),
        _task("chnsenticorp", cls, "tsv", _three(_columns(1, label=0)), acc, labels=_BINARY),
        _squad_task("cmrc2018", "cmrc"),
        _squad_task("drcd", "cmrc", splits=("train", "dev", "test")),
        # KoELECTRA's finetune data (file names from its configs, columns from its processors).
        _task(
            "nsmc",
            cls,
            "tsv",
            _files(_columns(1, label=2), train="ratings_train.txt", test="ratings_test.txt"),
            acc,
            labels=_BINARY,
        ),
        _task(
            "kornli",
            cls,
            "tsv",
            _files(
                _columns(0, 1, 2),
                train="multinli.train.ko.tsv",
                dev="xnli.dev.ko.tsv",
                test="xnli.test.ko.tsv",
            ),
            acc,
            labels=_NLI,
        ),
        _sts_task(
            "korsts",
            _files(_columns(5, 6, 4), **{s: f"sts-{s}.tsv" for s in ("train", "dev", "test")}),
        ),
        _task(
            "question_pair",
            cls,
            "tsv",
            _three(_nonempty_pair(_columns(0, 1, 2))),
            acc,
            labels=_BINARY,
            symmetric=True,
        ),
        # KoELECTRA trains on train.tsv and reports on val.tsv (its "test_file"); text in column 1,
        # label in column 3 of its files.
        _task(
            "hate_speech",
            cls,
            "tsv",
            _files(_columns(1, label=3), train="train.tsv", test="val.tsv"),
            ("f1_macro", "accuracy"),
            labels=("none", "offensive", "hate"),
        ),
        _task(
            "naver_ner",
            "tagging",
            "word_tags",
            {"train": ("train.tsv",), "test": ("test.tsv",)},
            ("entity_f1",),
            labels=_NAVER_TYPES,
            suffix_tags=True,
        ),
        _squad_task("korquad", "korquad", prefix="KorQuAD_v1.0_"),
    ]
    return {task.name: task for task in tasks}


def _squad_task(name, metric, splits=("train", "dev"), prefix="", **kwargs):
    """A span-QA task in SQuAD's JSON format: files `<prefix><split>.json`."""
    files = {split: (f"{prefix}{split}.json",) for split in splits}
    return _task(name, "span_qa", "squad", files, (metric,), **kwargs)


def _mrqa_task(name):
    """An MRQA 2019 task: `train.jsonl`/`dev.jsonl`, scored by the MRQA official evaluation."""
    files = {split: (f"{split}.jsonl",) for split in ("train", "dev")}
    return _task(name, "span_qa", "mrqa", files, ("mrqa",))


BUILTIN_TASKS = _builtin_tasks()
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ----- JSON specs -------------------------------------------------------------------------------

_SENTENCE_KEYS = {"header", "text_a", "text_b", "label", "symmetric"}
SPEC_KEYS = {
    "classification": {"kind", "format", "files", "metric", "labels"} | _SENTENCE_KEYS,
    "regression": {"kind", "format", "files", "metric", "range"} | _SENTENCE_KEYS,
    "tagging": {"kind", "format", "files", "metric", "labels", "tag_format", "scheme"},
    "span_qa": {"kind", "format", "files", "metric", "version_2"},
}
_SPEC_FORMATS = {
    "classification": ("tsv", "csv", "jsonl"),
    "regression": ("tsv", "csv", "jsonl"),
    "tagging": ("conll", "word_tags"),
    "span_qa": ("squad", "mrqa"),
}
_DEFAULT_METRIC = {
    "classification": "accuracy",
    "regression": "pearson_spearman",
    "tagging": "entity_f1",
}
_EXTENSIONS = {
    "tsv": "tsv",
    "csv": "csv",
    "jsonl": "jsonl",
    "conll": "txt",
    "word_tags": "tsv",
    "squad": "json",
    "mrqa": "jsonl",
}


def task_from_spec(name, spec, raw_dir, source):
    """Builds a Task from a JSON spec (see the module doc); errors name the key and `source`."""
    if not isinstance(spec, dict):
        raise ValueError(f"Task spec {source} must be a JSON object, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f'Task spec {source}: "kind" must be one of {KINDS}, got {kind!r}')
    for key in spec:
        if key not in SPEC_KEYS[kind]:
            raise ValueError(
                f"Unknown key {key!r} in task spec {source} for a {kind} task; "
                f"allowed keys: {sorted(SPEC_KEYS[kind])}"
            )
    fmt = spec.get("format", _SPEC_FORMATS[kind][0])
    if fmt not in _SPEC_FORMATS[kind]:
        raise ValueError(
            f'Task spec {source}: "format" of a {kind} task must be one of '
            f"{_SPEC_FORMATS[kind]}, got {fmt!r}"
        )
    metric_names = spec.get("metric", _default_metric(kind, spec))
    metric_names = (metric_names,) if isinstance(metric_names, str) else tuple(metric_names)
    known = {"span_qa": metrics.QA_METRICS, "tagging": ("entity_f1",)}.get(
        kind, metrics.SENTENCE_METRICS
    )
    for metric in metric_names:
        if metric not in known:
            raise ValueError(
                f"Task spec {source}: unknown metric {metric!r} for a {kind} task; "
                f"known: {sorted(known)}"
            )
    if spec.get("tag_format", "prefix") not in ("prefix", "suffix"):
        raise ValueError(
            f'Task spec {source}: "tag_format" must be "prefix" (B-PER) or '
            f'"suffix" (PER-B), got {spec["tag_format"]!r}'
        )
    if fmt == "mrqa" and spec.get("version_2"):
        raise ValueError(
            f'Task spec {source}: "version_2" needs the "squad" format (MRQA files have no '
            "unanswerable questions); drop it or convert the data to SQuAD 2.0 JSON."
        )
    scheme = spec.get("scheme", "BIOES")
    if scheme not in TAG_SCHEMES:
        raise ValueError(
            f'Task spec {source}: "scheme" must be one of {TAG_SCHEMES}, got {scheme!r}'
        )
    files = spec.get("files") or {s: f"{s}.{_EXTENSIONS[fmt]}" for s in ("train", "dev", "test")}
    for split, file in files.items():
        if not _is_plain_relative(file):
            raise ValueError(
                f'Task spec {source}: "files" {split!r}: {file!r} must be a file name inside the '
                f"task's folder {raw_dir} (no absolute paths, no '..'); move the file there."
            )
    header = bool(spec.get("header", False))
    splits = {split: SplitFile(file) for split, file in files.items()}
    if kind in ("classification", "regression"):
        if "text_a" not in spec or "label" not in spec:
            raise ValueError(f'Task spec {source}: a {kind} task needs "text_a" and "label"')
        keys = [spec["text_a"], spec.get("text_b"), spec["label"]]
        keyed = fmt != "jsonl" and any(isinstance(k, str) for k in keys)
        if keyed and not header:
            raise ValueError(f'Task spec {source}: column names need "header": true')
        labeled, unlabeled = _columns(*keys), _columns(*keys[:2])
        # Like the reference, files of splits named "test..." carry no labels.
        splits = {
            split: SplitFile(file, unlabeled if "test" in split else labeled, header, keyed)
            for split, file in files.items()
        }
    task = Task(
        name=name,
        kind=kind,
        format=fmt,
        splits=splits,
        metrics=metric_names,
        symmetric=bool(spec.get("symmetric", False)),
        version_2=bool(spec.get("version_2", False)),
        tag_scheme=scheme,
        suffix_tags=spec.get("tag_format", "prefix") == "suffix",
        raw_dir=raw_dir,
        source=source,
    )
    if "labels" in spec:
        task.labels = tuple(str(x) for x in spec["labels"])
    if "range" in spec:
        task.regression_range = tuple(float(x) for x in spec["range"])
    _infer_from_train(task)
    return task


def _default_metric(kind, spec):
    if kind == "span_qa" and spec.get("format") == "mrqa":
        return "mrqa"
    if kind == "span_qa":
        return "squad_v2" if spec.get("version_2") else "squad_v1"
    return _DEFAULT_METRIC[kind]


def _infer_from_train(task):
    """Fills labels / entity types / the regression range from the train split when not given."""
    missing = {
        "classification": task.labels is None,
        "tagging": task.labels is None,
        "regression": task.regression_range is None,
    }.get(task.kind, False)
    if not missing:
        return
    if "train" not in task.splits:
        raise ValueError(
            f'Task spec {task.source}: give "labels"/"range" or a train file to infer them from'
        )
    examples = task.get_examples("train")
    if task.kind == "classification":
        task.labels = tuple(sorted({ex.label for ex in examples}))
    elif task.kind == "regression":
        values = [ex.label for ex in examples]
        task.regression_range = (min(values), max(values))
    else:
        task.labels = tuple(
            sorted({t.split("-", 1)[-1] for ex in examples for t in ex.tags if t != "O"})
        )


def check_task_name(name):
    """Task names are plain names: they name folders and output files."""
    if not isinstance(name, str) or not _TASK_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"Task name {name!r} must be a plain name (letters, digits, '_', '-', '.'), not a "
            "path: it names the task's data folder and its output files."
        )


def _is_plain_relative(path):
    parts = str(path).replace("\\", "/").split("/")
    return bool(path) and not fileio.has_scheme(path) and parts[0] != "" and ".." not in parts


def get_task(name, data_dir=None, raw_dir=None, spec=None):
    """The task called `name`, reading from `raw_dir` or `<data_dir>/finetuning_data/<name>`.

    A `spec` dict (e.g. `hparams[name]`) wins over a `task.json` in the folder, which wins over the
    built-in task of that name.
    """
    check_task_name(name)
    if raw_dir is None:
        if data_dir is None:
            raise ValueError("get_task needs data_dir or raw_dir")
        raw_dir = fileio.join(data_dir, "finetuning_data", name)
    if spec is not None:
        return task_from_spec(name, spec, raw_dir, f"hparams[{name!r}]")
    spec_path = fileio.join(raw_dir, "task.json")
    if tf.io.gfile.exists(spec_path):
        return task_from_spec(name, fileio.read_json(spec_path), raw_dir, spec_path)
    if name in BUILTIN_TASKS:
        return dataclasses.replace(BUILTIN_TASKS[name], raw_dir=raw_dir)
    raise ValueError(
        f"Unknown task {name!r}: not built in ({', '.join(sorted(BUILTIN_TASKS))}) "
        f"and no task spec given or found at {spec_path}"
    )
