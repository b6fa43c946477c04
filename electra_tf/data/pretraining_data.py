"""Raw text -> sharded TFRecords of pre-training examples, with the reference's packing semantics.

Example semantics follow google-research/electra `build_pretraining_dataset.py`: lines accumulate
until the target length without crossing a document (blank lines separate documents); 10% of
examples are single-segment; otherwise sentences are split into A/B around half the target with
the reference's rules; 5% of examples get a random target length in [5, max]; `[CLS] A [SEP] B
[SEP]`, zero padding. The reference draws from Python's global `random`; here every job has its
own `random.Random` seeded from `--seed` and the job number, making the output byte-identical for
the same seed and number of processes.

Differences from the reference, all about robustness: invalid UTF-8 is replaced and counted (the
reference crashes), binary files are skipped with a warning, a leading BOM is dropped, a lone CR is
a line break (old Mac files; CRLF is one break), text lost to truncation is counted and warned
about, and `dataset_info.json` records what the data was built with.

Publishing: shards are written under temporary names and renamed only once every shard is
complete; `dataset_info.json` is written last, so a dataset is complete exactly when it exists (a
killed or failed build publishes nothing, and pre-training refuses data without it). Worker
processes die with their parent (SIGKILL included), and a SIGTERM to the parent stops them.
"""

import ctypes
import dataclasses
import gc
import hashlib
import json
import multiprocessing
import os
import queue
import random
import signal
import sys
import threading
import time
import traceback

import tensorflow as tf
from absl import logging

from electra_tf import fileio, tokenization
from electra_tf.data import records

BUILDER_VERSION = 1
SHARD_PREFIX = "pretrain_data.tfrecord"
DATASET_INFO = "dataset_info.json"
WORD_START_FEATURE = "is_word_start"
_READ_BLOCK_BYTES = 1 << 22
_UTF8_BOM = b"\xef\xbb\xbf"
_REPLACEMENT_UTF8 = "\ufffd".encode()
_PARENT_POLL_SECONDS = 1.0


@dataclasses.dataclass
class BuildOptions:
    """What `build_pretraining_dataset.py` is asked to do (flag names as in the reference)."""

    corpus_dir: str
    vocab_file: str
    output_dir: str
    max_seq_length: int = 128
    num_processes: int = 1
    blanks_separate_docs: bool = True
    do_lower_case: bool = True
    strip_accents: bool = None  # None: same as do_lower_case
    num_out_files: int = 1000
    seed: int = 0
    word_segmenter: str = None  # None or "jieba"
    overwrite: bool = False

    def __post_init__(self):
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length must be at least 5, got {self.max_seq_length}")
        if self.num_processes < 1 or self.num_out_files < 1:
            raise ValueError("num_processes and num_out_files must be positive")
        if self.num_processes > self.num_out_files:
            raise ValueError(
                f"num_processes ({self.num_processes}) cannot exceed num_out_files "
                f"({self.num_out_files}): every process writes its own shards"
            )
        if self.word_segmenter not in (None, "", "none", "jieba"):
            raise ValueError(
                f"Unknown word_segmenter {self.word_segmenter!r}; use 'jieba' or none. "
                "(WordPiece '##' pieces already mark words for space-delimited languages, "
                "Korean included.)"
            )
        if self.word_segmenter in ("", "none"):
            self.word_segmenter = None


class ExampleBuilder:
    """Packs tokenized lines into fixed-length examples (the reference's ExampleBuilder)."""

    def __init__(self, cls_id, sep_id, max_length, rng, with_word_starts=False, max_id=None):
        self._cls, self._sep = cls_id, sep_id
        self._max_id = max_id  # the largest possible token id, so packing need not scan
        self._max_length = max_length
        self._target_length = max_length
        self._rng = rng
        self._with_word_starts = with_word_starts
        self._sentences = []
        self._word_starts = []
        self._current_length = 0
        # Tokens the packing drops (as the reference does): all of them, and those of examples
        # that drop more than `max_length` tokens, i.e. lose more text than they keep (a line or
        # document longer than an example); only the latter are warned about.
        self.truncated_tokens = 0
        self.heavily_truncated_examples = 0
        self.heavily_truncated_tokens = 0

    def add_line(self, ids, word_starts=None):
        """Adds a non-empty line's token ids; returns a serialized example when one is complete."""
        self._sentences.append(ids)
        if self._with_word_starts:
            self._word_starts.append(word_starts)
        self._current_length += len(ids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def add_blank_line(self):
        """A blank line ends the document; like the reference, a blank before any text is kept."""
        if self._current_length != 0:
            return self._create_example()
        return self.add_line([], [])

    def _create_example(self):
        rng = self._rng
        if rng.random() < 0.1:  # single segment, as in classification tasks
            first_target = 100000
        else:  # -3 for the not yet added [CLS] and two [SEP]
            first_target = (self._target_length - 3) // 2
        first, second = [], []
        first_starts, second_starts = [], []
        for i, sentence in enumerate(self._sentences):
            # To the first segment if it is empty, if the sentence fits, or half the time when it
            # would overflow the first segment while the second is still empty.
            if (
                not first
                or len(first) + len(sentence) < first_target
                or (not second and len(first) < first_target and rng.random() < 0.5)
            ):
                first += sentence
                if self._with_word_starts:
                    first_starts += self._word_starts[i]
            else:
                second += sentence
                if self._with_word_starts:
                    second_starts += self._word_starts[i]
        total = len(first) + len(second)
        first = first[: self._max_length - 2]
        second = second[: max(0, self._max_length - len(first) - 3)]
        lost = total - len(first) - len(second)
        if lost:
            self.truncated_tokens += lost
            if lost > self._max_length:
                self.heavily_truncated_examples += 1
                self.heavily_truncated_tokens += lost

        self._sentences, self._word_starts, self._current_length = [], [], 0
        if rng.random() < 0.05:  # sometimes a shorter example
            self._target_length = rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length

        input_ids = [self._cls] + first + [self._sep]
        n_first = len(input_ids)
        if second:
            input_ids += second + [self._sep]
        n_real = len(input_ids)
        pad = b"\x00" * (self._max_length - n_real)  # a packed zero is one zero byte
        features = {
            "input_ids": records.pack_int64(input_ids, self._max_id) + pad,
            "input_mask": b"\x01" * n_real + pad,
            "segment_ids": b"\x00" * n_first + b"\x01" * (n_real - n_first) + pad,
        }
        if self._with_word_starts:
            starts = [1] + first_starts[: len(first)] + [1]
            if second:
                starts += second_starts[: len(second)] + [1]
            features[WORD_START_FEATURE] = bytes(starts) + pad
        return records.encode_packed_example(features), n_real


def shard_name(index, num_out_files):
    return f"{SHARD_PREFIX}-{index}-of-{num_out_files}"


def join_path(directory, name):
    return directory.rstrip("/") + "/" + name


def file_sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def _decode(data, stats):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        stats["invalid_utf8_sequences"] += text.count("\ufffd") - data.count(_REPLACEMENT_UTF8)
        return text


def _split_lines(text):
    """LF, CRLF and a lone CR (old Mac files) each end a line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def read_line_blocks(path, stats, block_bytes=_READ_BLOCK_BYTES):
    """Yields lists of raw lines of one file, streaming, never holding the whole file.

    Lines end at LF, CRLF or a lone CR; a CR at the end of a block waits for the next block, so a
    CRLF split between two reads stays one break.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read(block_bytes)
        if not data:
            stats["empty_files"] += 1
            return
        if fileio.looks_binary(data):
            stats["skipped_binary_files"] += 1
            logging.warning("Skipping %s: it looks binary (NUL bytes), not text.", path)
            return
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM) :]
        pending = b""
        while data:
            stats["bytes"] += len(data)
            data = pending + data
            # The last break of the block; a final CR may be the first half of a CRLF.
            limit = len(data) - 1 if data.endswith(b"\r") else len(data)
            cut = max(data.rfind(b"\n", 0, limit), data.rfind(b"\r", 0, limit))
            if cut < 0:
                pending = data
            else:
                pending = data[cut + 1 :]
                end = cut - 1 if data[cut - 1 : cut + 1] == b"\r\n" else cut
                yield _split_lines(_decode(data[:end], stats))
            data = f.read(block_bytes)
        if pending.endswith(b"\r"):
            pending = pending[:-1]
        if pending:
            yield _split_lines(_decode(pending, stats))


class _WordSegmenter:
    """Marks word starts from a segmenter (jieba), aligned to the tokenizer's exact ids."""

    def __init__(self, tokenizer):
        import jieba

        jieba.setLogLevel(60)
        self._jieba = jieba
        self._tokenizer = tokenizer
        self._continuation = [t.startswith("##") for t in tokenizer._vocab_list()]

    def word_starts(self, lines, ids_per_line, stats):
        words_per_line = [self._jieba.lcut(line) for line in lines]
        flat_words = [w for words in words_per_line for w in words]
        word_ids = iter(self._tokenizer.encode_batch(flat_words))
        result = []
        for words, line_ids in zip(words_per_line, ids_per_line):
            ids, starts = [], []
            for _ in words:
                piece_ids = next(word_ids)
                ids += piece_ids
                starts += [1] + [0] * (len(piece_ids) - 1) if piece_ids else []
            if ids != line_ids:  # segmentation cut inside a token: fall back to '##' pieces
                stats["segmenter_fallback_lines"] += 1
                starts = [0 if self._continuation[i] else 1 for i in line_ids]
            result.append(starts)
        return result


def _new_stats():
    return {
        k: 0
        for k in (
            "files",
            "empty_files",
            "skipped_binary_files",
            "bytes",
            "chars",
            "lines",
            "documents",
            "examples",
            "example_tokens",
            "corpus_tokens",
            "unk_tokens",
            "invalid_utf8_sequences",
            "segmenter_fallback_lines",
            "truncated_tokens",
            "heavily_truncated_examples",
            "heavily_truncated_tokens",
        )
    }


def load_tokenizer(opts):
    """The tokenizer the options describe; refuses a vocabulary without [CLS] or [SEP]."""
    tokenizer = tokenization.FullTokenizer(opts.vocab_file, opts.do_lower_case, opts.strip_accents)
    for token in ("[CLS]", "[SEP]"):
        if token not in tokenizer.vocab:
            raise ValueError(f"Vocabulary {opts.vocab_file} has no {token} token.")
    return tokenizer


def build_job(job_id, opts, files, report=None):
    """One process's share: tokenizes its files and writes shards i with i % processes == job_id.

    Publishes its shards (renames them to their final names) at the end; returns the stats.
    """
    stats, shards = build_job_unpublished(job_id, opts, files, report)
    publish_shards(shards)
    return stats


def build_job_unpublished(job_id, opts, files, report=None):
    """`build_job` without the renames: returns (stats, [(temporary path, final path)]).

    On failure the job's temporary files are removed. The cyclic garbage collector is paused
    meanwhile: the loop makes millions of short-lived lists and no cycles, and collections alone
    took 40% of the time (measured).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_job(job_id, opts, files, report)
    finally:
        if gc_was_enabled:
            gc.enable()


def publish_shards(shards):
    for tmp_path, path in shards:
        tf.io.gfile.rename(tmp_path, path, overwrite=True)


def _build_job(job_id, opts, files, report):
    tokenizer = load_tokenizer(opts)
    rng = random.Random(opts.seed * 1000003 + job_id)
    files = list(files)
    rng.shuffle(files)
    segmenter = _WordSegmenter(tokenizer) if opts.word_segmenter else None
    builder = ExampleBuilder(
        tokenizer.vocab["[CLS]"],
        tokenizer.vocab["[SEP]"],
        opts.max_seq_length,
        rng,
        with_word_starts=segmenter is not None,
        max_id=tokenizer.vocab_size - 1,
    )
    writers = []
    try:
        for i in range(opts.num_out_files):
            if i % opts.num_processes == job_id:
                path = join_path(opts.output_dir, shard_name(i, opts.num_out_files))
                writers.append(records.AtomicRecordWriter(path))
        stats = _write_examples(opts, files, tokenizer, segmenter, builder, writers, report)
        for writer in writers:
            writer.close(publish=False)
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    return stats, [(w.tmp_path, w.path) for w in writers]


def _write_examples(opts, files, tokenizer, segmenter, builder, writers, report):
    stats = _new_stats()
    unk = tokenizer.unk_id

    def emit(result):
        if result is not None:
            record, n_real = result
            writers[stats["examples"] % len(writers)].write(record)
            stats["examples"] += 1
            stats["example_tokens"] += n_real

    for path in files:
        stats["files"] += 1
        bytes_before = stats["bytes"]
        heavy_before = (builder.heavily_truncated_examples, builder.heavily_truncated_tokens)
        for raw_lines in read_line_blocks(path, stats):
            lines = [line.strip() for line in raw_lines]
            if not opts.blanks_separate_docs:
                lines = [line for line in lines if line]
            text_lines = [line for line in lines if line]
            ids_per_line = tokenizer.encode_batch(text_lines)
            starts_per_line = (
                segmenter.word_starts(text_lines, ids_per_line, stats)
                if segmenter
                else [None] * len(text_lines)
            )
            stats["lines"] += len(text_lines)
            stats["chars"] += sum(map(len, text_lines))
            stats["corpus_tokens"] += sum(map(len, ids_per_line))
            stats["unk_tokens"] += sum(ids.count(unk) for ids in ids_per_line)
            next_line = 0
            for line in lines:
                if line:
                    emit(builder.add_line(ids_per_line[next_line], starts_per_line[next_line]))
                    next_line += 1
                else:
                    stats["documents"] += 1
                    emit(builder.add_blank_line())
            if report:
                report(stats["bytes"] - bytes_before, stats["examples"])
                bytes_before = stats["bytes"]
        stats["documents"] += 1
        emit(builder.add_blank_line())
        examples = builder.heavily_truncated_examples - heavy_before[0]
        if examples:
            logging.warning(
                "%s: %d example(s) lost more than max_seq_length=%d tokens each to truncation, "
                "%d tokens in all: a line (or document) longer than an example is cut, as in the "
                "reference. Split long lines (e.g. one sentence or paragraph per line) to keep it.",
                path,
                examples,
                opts.max_seq_length,
                builder.heavily_truncated_tokens - heavy_before[1],
            )
    stats["truncated_tokens"] = builder.truncated_tokens
    stats["heavily_truncated_examples"] = builder.heavily_truncated_examples
    stats["heavily_truncated_tokens"] = builder.heavily_truncated_tokens
    return stats


def _die_with_parent(parent_pid):
    """Makes this worker process end when its parent does, however the parent ends (SIGKILL too).

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Everywhere: a
    thread polls the parent's pid and exits the process once the worker is orphaned (which also
    covers a parent that died before the prctl call).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - no usable libc
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)  # orphaned: nothing of this worker's is published

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _job_process(job_id, opts, files, messages, parent_pid):
    """Entry point of a worker process: reports progress, then its stats and unpublished shards
    (the parent publishes every shard once all jobs are done), through `messages`."""
    _die_with_parent(parent_pid)
    try:
        last = [time.monotonic(), 0, 0]

        def report(bytes_delta, examples):
            last[1] += bytes_delta
            if time.monotonic() - last[0] > 1.0:
                messages.put(("progress", job_id, (last[1], examples)))
                last[0], last[1] = time.monotonic(), 0

        stats, shards = build_job_unpublished(job_id, opts, files, report)
        messages.put(("progress", job_id, (last[1], stats["examples"])))
        messages.put(("done", job_id, (stats, shards)))
    except BaseException as e:  # reported to the parent, which fails the whole build
        error = e if isinstance(e, (OSError, ValueError)) else None
        messages.put(("error", job_id, (error, traceback.format_exc())))


class _Progress:
    """Logs bytes done, rate and ETA at most every few seconds."""

    def __init__(self, total_bytes, interval=5.0):
        self.total, self.done, self.examples = total_bytes, 0, {}
        self.start = self._last = time.monotonic()
        self.interval = interval

    def update(self, job_id, bytes_delta, examples, force=False):
        self.done += bytes_delta
        self.examples[job_id] = examples
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            logging.info(
                "%.1f/%.1f MB (%.0f%%), %.2f MB/s, %d examples, elapsed %.0fs, ETA %.0fs",
                self.done / 1e6,
                self.total / 1e6,
                100.0 * self.done / max(self.total, 1),
                rate / 1e6,
                sum(self.examples.values()),
                elapsed,
                eta,
            )


def list_corpus_files(corpus_dir):
    if not tf.io.gfile.isdir(corpus_dir):
        raise FileNotFoundError(f"Corpus directory not found: {corpus_dir}")
    names = sorted(tf.io.gfile.listdir(corpus_dir))
    files = [join_path(corpus_dir, n.rstrip("/")) for n in names]
    files = [f for f in files if not tf.io.gfile.isdir(f)]
    if not files:
        raise ValueError(f"Corpus directory {corpus_dir} has no files.")
    return files


def _normalized(path):
    if fileio.has_scheme(path):
        return path.rstrip("/")
    return os.path.realpath(path)


def check_output_outside_corpus(corpus_dir, output_dir):
    """Refuses an output folder that is the corpus folder or inside it (shards would mix with the
    corpus, and --overwrite would delete files there)."""
    corpus, output = _normalized(corpus_dir), _normalized(output_dir)
    if output == corpus or output.startswith(corpus.rstrip("/") + "/"):
        raise ValueError(
            f"--output_dir {output_dir} is inside --corpus_dir {corpus_dir}: the shards would be "
            "mixed with the corpus (and --overwrite would delete files there). Choose an output "
            "folder outside the corpus."
        )


def prepare_output_dir(output_dir, overwrite):
    """Refuses to mix with an earlier build unless `overwrite`; removes leftovers of killed runs.

    `dataset_info.json` goes first, so that a build killed while it removes the old shards leaves
    data that pre-training refuses.
    """
    tf.io.gfile.makedirs(output_dir)
    existing = [
        n
        for n in tf.io.gfile.listdir(output_dir)
        if n.startswith(SHARD_PREFIX) or n.startswith(DATASET_INFO)
    ]
    finished = [n for n in existing if ".tmp-" not in n]
    if finished and not overwrite:
        state = (
            "pre-training data"
            if DATASET_INFO in finished
            else f"the shards of an incomplete build (no {DATASET_INFO})"
        )
        raise FileExistsError(
            f"{output_dir} already holds {state} ({sorted(finished)[0]}, ...). "
            "Pass --overwrite to replace it, or choose another --output_dir."
        )
    for name in sorted(existing, key=lambda n: not n.startswith(DATASET_INFO)):
        tf.io.gfile.remove(join_path(output_dir, name))


def build_dataset(opts):
    """Builds the whole dataset; returns the dict written to dataset_info.json.

    Every input is checked before the output folder is touched. Shards are published (renamed to
    their final names) only once all are complete, then `dataset_info.json` is written, last; a
    build that fails or is stopped leaves no shard under its final name and no dataset_info.json.
    """
    start = time.time()
    check_output_outside_corpus(opts.corpus_dir, opts.output_dir)
    files = list_corpus_files(opts.corpus_dir)
    tokenizer = load_tokenizer(opts)
    prepare_output_dir(opts.output_dir, opts.overwrite)
    total_bytes = sum(tf.io.gfile.stat(f).length for f in files)
    logging.info(
        "Building from %d files (%.1f MB) with %d process(es) into %s",
        len(files),
        total_bytes / 1e6,
        opts.num_processes,
        opts.output_dir,
    )
    progress = _Progress(total_bytes)
    job_files = [
        [f for i, f in enumerate(files) if i % opts.num_processes == job]
        for job in range(opts.num_processes)
    ]
    if opts.num_processes == 1:
        results = [
            build_job_unpublished(
                0, opts, job_files[0], lambda delta, ex: progress.update(0, delta, ex)
            )
        ]
    else:
        results = _run_jobs(opts, job_files, progress)
    all_stats = [stats for stats, _ in results]
    publish_shards([shard for _, shards in results for shard in shards])
    progress.update(0, 0, all_stats[0]["examples"], force=True)

    totals = _new_stats()
    for stats in all_stats:
        for key, value in stats.items():
            totals[key] += value
    elapsed = time.time() - start
    info = {
        "builder_version": BUILDER_VERSION,
        "vocab_file": opts.vocab_file,
        "vocab_sha256": file_sha256(opts.vocab_file),
        "vocab_size": tokenizer.vocab_size,
        "do_lower_case": tokenizer.do_lower_case,
        "strip_accents": tokenizer.strip_accents,
        "max_seq_length": opts.max_seq_length,
        "num_out_files": opts.num_out_files,
        "num_processes": opts.num_processes,
        "seed": opts.seed,
        "blanks_separate_docs": opts.blanks_separate_docs,
        "word_segmenter": opts.word_segmenter,
        "features": ["input_ids", "input_mask", "segment_ids"]
        + ([WORD_START_FEATURE] if opts.word_segmenter else []),
        "counts": totals,
        "unk_rate": totals["unk_tokens"] / max(totals["corpus_tokens"], 1),
        "seconds": round(elapsed, 3),
        "chars_per_second": round(totals["chars"] / max(elapsed, 1e-9)),
    }
    # Last: the dataset is complete exactly when this file exists.
    fileio.write_text_atomic(
        join_path(opts.output_dir, DATASET_INFO), json.dumps(info, indent=2, sort_keys=True) + "\n"
    )
    logging.info(
        "Done in %.1fs: %d files (%d empty, %d binary skipped), %d documents, %d lines, %d examples, "
        "%d tokens in examples, %d tokens truncated, [UNK] rate %.4f%%, %d invalid UTF-8 "
        "sequences replaced, %.2f M chars/s",
        elapsed,
        totals["files"],
        totals["empty_files"],
        totals["skipped_binary_files"],
        totals["documents"],
        totals["lines"],
        totals["examples"],
        totals["example_tokens"],
        totals["truncated_tokens"],
        100 * info["unk_rate"],
        totals["invalid_utf8_sequences"],
        info["chars_per_second"] / 1e6,
    )
    if totals["heavily_truncated_examples"]:
        logging.warning(
            "Truncation lost text: %d example(s) dropped more than max_seq_length=%d tokens each, "
            "%d tokens in all (%.2f%% of the corpus's %d tokens; see the warnings above for the "
            "files). Split long lines to keep them.",
            totals["heavily_truncated_examples"],
            opts.max_seq_length,
            totals["heavily_truncated_tokens"],
            100 * totals["heavily_truncated_tokens"] / max(totals["corpus_tokens"], 1),
            totals["corpus_tokens"],
        )
    return info


class _Stopped(BaseException):
    """SIGTERM reached the parent while workers run (raised by the handler, so cleanup runs)."""


def _on_sigterm(signum, frame):  # pylint: disable=unused-argument
    raise _Stopped()


def _run_jobs(opts, job_files, progress):
    """Runs one spawned process per job (TensorFlow does not survive fork); returns each job's
    (stats, unpublished shards).

    The workers die with this process (see `_die_with_parent`); a SIGTERM here stops them, removes
    their temporary files and exits with status 143. On any failure nothing is published.
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    processes = [
        context.Process(
            target=_job_process, args=(job, opts, files, messages, os.getpid()), daemon=True
        )
        for job, files in enumerate(job_files)
    ]
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    results = {}
    try:
        for p in processes:
            p.start()
        while len(results) < len(processes):
            try:
                kind, job, payload = messages.get(timeout=5.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(processes) if not p.is_alive() and i not in results]
                if dead and messages.empty():
                    raise RuntimeError(
                        f"Builder process {dead[0]} died without reporting (out of memory?)"
                    ) from None
                continue
            if kind == "error":
                error, trace = payload
                if error is not None:
                    logging.debug("Builder process %d failed:\n%s", job, trace)
                    raise error
                raise RuntimeError(f"Builder process {job} failed:\n{trace}")
            if kind == "progress":
                progress.update(job, *payload)
            else:
                results[job] = payload
    except BaseException as e:
        _stop(processes)
        _remove_temporaries(opts.output_dir, processes)
        if isinstance(e, _Stopped):
            logging.error(
                "Stopped by SIGTERM: the worker processes were stopped and nothing was published."
            )
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        _stop(processes)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
    return [results[i] for i in range(len(processes))]


def _stop(processes):
    for p in processes:
        if p.pid is not None and p.is_alive():
            p.terminate()
    for p in processes:
        if p.pid is not None:
            p.join()


def _remove_temporaries(output_dir, processes):
    """Removes the temporary shards of the workers (finished or stopped) of a failed build."""
    suffixes = tuple(f".tmp-{p.pid}" for p in processes if p.pid is not None)
    try:
        names = tf.io.gfile.listdir(output_dir)
    except tf.errors.OpError:
        return
    for name in names:
        if name.startswith(SHARD_PREFIX) and name.endswith(suffixes):
            try:
                tf.io.gfile.remove(join_path(output_dir, name))
            except tf.errors.OpError:
                pass


def read_dataset_info(data_dir_or_pattern):
    """The dataset_info.json next to a shard pattern or in a directory, or None if absent."""
    directory = data_dir_or_pattern
    if "*" in directory or SHARD_PREFIX in directory:
        directory = directory.rsplit("/", 1)[0]
    path = join_path(directory, DATASET_INFO)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
