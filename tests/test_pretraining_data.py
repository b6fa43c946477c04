"""build_pretraining_dataset: the reference's packing semantics, determinism, bad input, gfile paths."""

import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, build_options, shared_path

from electra_tf.data import pretraining_data as data

CLS, SEP = 2, 3


def reference_examples(sentences_and_blanks, max_length, seed):
    """The reference ExampleBuilder's algorithm, written out plainly, on pre-tokenized lines."""
    rng = random.Random(seed)
    target, current, length, out = max_length, [], 0, []

    def create():
        nonlocal target, current, length
        first_target = 100000 if rng.random() < 0.1 else (target - 3) // 2
        first, second = [], []
        for s in current:
            if (
                len(first) == 0
                or len(first) + len(s) < first_target
                or (len(second) == 0 and len(first) < first_target and rng.random() < 0.5)
            ):
                first += s
            else:
                second += s
        first = first[: max_length - 2]
        second = second[: max(0, max_length - len(first) - 3)]
        current, length = [], 0
        target = rng.randint(5, max_length) if rng.random() < 0.05 else max_length
        ids = [CLS] + first + [SEP] + (second + [SEP] if second else [])
        seg = [0] * (len(first) + 2) + [1] * (len(second) + 1 if second else 0)
        pad = [0] * (max_length - len(ids))
        return ids + pad, [1] * len(ids) + pad, seg + pad

    for line in sentences_and_blanks:
        if line is None:  # blank line
            if length != 0:
                out.append(create())
                continue
            line = []
        current.append(line)
        length += len(line)
        if length >= target:
            out.append(create())
    return out


def _parse(record):
    feats = tf.train.Example.FromString(record).features.feature
    return {k: list(v.int64_list.value) for k, v in feats.items()}


def test_example_builder_matches_reference_algorithm():
    rng = random.Random(7)
    lines = []
    for _ in range(3000):
        if rng.random() < 0.05:
            lines.append(None)
        else:
            lines.append(
                [rng.randint(5, 99) for _ in range(rng.choice([0, 1, 3, 10, 30, 70, 200]))]
            )
    for max_length in (16, 128):
        builder = data.ExampleBuilder(CLS, SEP, max_length, random.Random(11))
        got = []
        for line in lines:
            result = builder.add_blank_line() if line is None else builder.add_line(line)
            if result:
                ex = _parse(result[0])
                got.append((ex["input_ids"], ex["input_mask"], ex["segment_ids"]))
                assert result[1] == sum(ex["input_mask"])
        assert got == [tuple(e) for e in reference_examples(lines, max_length, 11)]


def test_packing_statistics():
    rng = random.Random(0)
    builder = data.ExampleBuilder(CLS, SEP, 128, random.Random(1))
    examples = []
    for _ in range(40000):
        result = builder.add_line([rng.randint(5, 99) for _ in range(rng.randint(5, 25))])
        if result:
            examples.append(_parse(result[0]))
    single = np.mean([max(e["segment_ids"]) == 0 for e in examples])
    short = np.mean([sum(e["input_mask"]) < 100 for e in examples])
    assert 0.07 < single < 0.13, single  # 10% single-segment
    assert 0.03 < short < 0.08, short  # 5% random target length
    for e in examples:
        n = sum(e["input_mask"])
        assert (
            len(e["input_ids"]) == 128 and e["input_ids"][0] == CLS and e["input_ids"][n - 1] == SEP
        )
        assert e["input_ids"][n:] == [0] * (128 - n)
        seps = [i for i, t in enumerate(e["input_ids"]) if t == SEP]
        assert len(seps) in (1, 2) and seps[-1] == n - 1
        assert e["segment_ids"][: seps[0] + 1] == [0] * (seps[0] + 1)
        assert e["segment_ids"][seps[0] + 1 : n] == [1] * (n - seps[0] - 1)


def _vocab(tmp_path):
    words = "the cat dog sat on mat a big red ##s ##ed . , 中 文 字 我 们 是".split()
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    return str(path)


def _corpus(directory, n_docs=60, seed=0):
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for f in range(3):
        docs = []
        for _ in range(n_docs // 3):
            docs.append(
                "\n".join(
                    " ".join(
                        rng.choice(
                            ["the", "cat", "dogs", "sat", "on", "a", "mat", "red", "big", "xyz"]
                        )
                        for _ in range(rng.randint(3, 20))
                    )
                    + "."
                    for _ in range(rng.randint(1, 8))
                )
            )
        with open(os.path.join(directory, f"part{f}.txt"), "w") as fh:
            fh.write("\n\n".join(docs) + "\n")


def _read_all(output_dir):
    records = []
    for name in sorted(tf.io.gfile.listdir(output_dir)):
        if name.startswith(data.SHARD_PREFIX):
            records += [r.numpy() for r in tf.data.TFRecordDataset(f"{output_dir}/{name}")]
    return records


def _build(tmp_path, corpus_dir, out, **kw):
    return data.build_dataset(build_options(corpus_dir, _vocab(tmp_path), out, **kw))


def test_build_is_deterministic_and_parses(tmp_path):
    _corpus(tmp_path / "corpus")
    info = _build(tmp_path, tmp_path / "corpus", tmp_path / "a", seed=5)
    _build(tmp_path, tmp_path / "corpus", tmp_path / "b", seed=5)
    _build(tmp_path, tmp_path / "corpus", tmp_path / "c", seed=6)
    for i in range(4):
        name = data.shard_name(i, 4)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert _read_all(str(tmp_path / "a")) != _read_all(str(tmp_path / "c"))
    records = _read_all(str(tmp_path / "a"))
    assert len(records) == info["counts"]["examples"] > 20
    spec = {
        k: tf.io.FixedLenFeature([32], tf.int64) for k in ("input_ids", "input_mask", "segment_ids")
    }
    for r in records:
        tf.io.parse_single_example(r, spec)
    saved = json.loads((tmp_path / "a" / data.DATASET_INFO).read_text())
    assert saved["vocab_sha256"] == data.file_sha256(_vocab(tmp_path))
    assert saved["max_seq_length"] == 32 and saved["seed"] == 5 and saved["vocab_size"] == 24
    assert saved["counts"]["unk_tokens"] > 0 and 0 < saved["unk_rate"] < 0.2  # "xyz" is unknown
    assert saved["counts"]["documents"] >= 60


def test_documents_are_never_mixed(tmp_path):
    # Each document uses one distinct word, so an example holding two words crossed a boundary.
    words = ["the", "cat", "dog", "sat", "on", "mat", "a", "big", "red"]
    (tmp_path / "corpus").mkdir()
    docs = ["\n".join(" ".join([w] * 7) for _ in range(5)) for w in words]
    (tmp_path / "corpus" / "c.txt").write_text("\n\n".join(docs))
    _build(tmp_path, tmp_path / "corpus", tmp_path / "out")
    for r in _read_all(str(tmp_path / "out")):
        ids = [i for i in _parse(r)["input_ids"] if i > 4]
        assert len(set(ids)) == 1


def test_multiprocess_build_is_deterministic(tmp_path):
    _corpus(tmp_path / "corpus")
    info = _build(tmp_path, tmp_path / "corpus", tmp_path / "a", num_processes=2)
    _build(tmp_path, tmp_path / "corpus", tmp_path / "b", num_processes=2)
    single = _build(tmp_path, tmp_path / "corpus", tmp_path / "c", num_processes=1)
    assert _read_all(str(tmp_path / "a")) == _read_all(str(tmp_path / "b"))
    assert info["counts"]["lines"] == single["counts"]["lines"]
    assert info["counts"]["corpus_tokens"] == single["counts"]["corpus_tokens"]


def test_gcs_like_paths_via_ram(tmp_path, ram_dir):
    _corpus(tmp_path / "corpus")
    tf.io.gfile.makedirs(f"{ram_dir}/corpus")
    for name in os.listdir(tmp_path / "corpus"):
        tf.io.gfile.copy(str(tmp_path / "corpus" / name), f"{ram_dir}/corpus/{name}")
    tf.io.gfile.copy(_vocab(tmp_path), f"{ram_dir}/vocab.txt")
    info = data.build_dataset(
        data.BuildOptions(
            corpus_dir=f"{ram_dir}/corpus",
            vocab_file=f"{ram_dir}/vocab.txt",
            output_dir=f"{ram_dir}/out",
            max_seq_length=32,
            num_out_files=2,
        )
    )
    assert len(_read_all(f"{ram_dir}/out")) == info["counts"]["examples"] > 0
    assert data.read_dataset_info(f"{ram_dir}/out/pretrain_data.tfrecord*")["num_out_files"] == 2
    assert not [n for n in tf.io.gfile.listdir(f"{ram_dir}/out") if ".tmp-" in n]


def test_bad_inputs_are_survived_and_counted(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a_invalid.txt").write_bytes(b"the cat \xff\xfe sat\nthe dog\n")
    (corpus / "b_empty.txt").write_bytes(b"")
    (corpus / "c_binary.bin").write_bytes(bytes(range(256)) * 40)
    (corpus / "d_bom_crlf.txt").write_bytes(
        b"\xef\xbb\xbfthe red cat\r\nsat on a mat\r\n\r\nthe dog\r\n"
    )
    (corpus / "e_long_line.txt").write_bytes(b"the cat sat " * 900_000)  # ~10 MB, one line
    info = _build(tmp_path, corpus, tmp_path / "out", max_seq_length=64)
    counts = info["counts"]
    assert (
        counts["files"] == 5 and counts["empty_files"] == 1 and counts["skipped_binary_files"] == 1
    )
    assert counts["invalid_utf8_sequences"] == 2
    records = [_parse(r) for r in _read_all(str(tmp_path / "out"))]
    first_tokens = {tuple(r["input_ids"][1:4]) for r in records}
    assert (5, 13, 6) in first_tokens  # "the red cat": the BOM vanished, CRLF stripped
    assert all(len(r["input_ids"]) == 64 for r in records)


def test_missing_vocab_and_existing_output(tmp_path):
    _corpus(tmp_path / "corpus")
    with pytest.raises(FileNotFoundError, match="Vocabulary file not found"):
        data.build_dataset(
            data.BuildOptions(
                corpus_dir=str(tmp_path / "corpus"),
                vocab_file=str(tmp_path / "none.txt"),
                output_dir=str(tmp_path / "out"),
            )
        )
    with pytest.raises(FileNotFoundError, match="Corpus directory not found"):
        _build(tmp_path, tmp_path / "nothing", tmp_path / "out")
    _build(tmp_path, tmp_path / "corpus", tmp_path / "out")
    with pytest.raises(FileExistsError, match="--overwrite"):
        _build(tmp_path, tmp_path / "corpus", tmp_path / "out")
    _build(tmp_path, tmp_path / "corpus", tmp_path / "out", overwrite=True, num_out_files=2)
    assert len([n for n in os.listdir(tmp_path / "out") if n.startswith(data.SHARD_PREFIX)]) == 2


def test_jieba_word_starts(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "zh.txt").write_text("我们是中文字\n我们 the cats\n")
    _build(tmp_path, corpus, tmp_path / "out", word_segmenter="jieba", max_seq_length=16)
    records = [_parse(r) for r in _read_all(str(tmp_path / "out"))]
    assert len(records) == 1
    ex = records[0]
    vocab = open(_vocab(tmp_path)).read().split("\n")
    tokens = [vocab[i] for i in ex["input_ids"] if i]
    starts = dict(zip(range(len(tokens)), ex[data.WORD_START_FEATURE]))
    assert (
        tokens[:3] == ["[CLS]", "我", "们"] and starts[1] == 1 and starts[2] == 0
    )  # 我们 is one word
    cats = tokens.index("cat")
    assert tokens[cats + 1] == "##s" and starts[cats] == 1 and starts[cats + 1] == 0
    assert ex[data.WORD_START_FEATURE][len(tokens) :] == [0] * (16 - len(tokens))


def test_command_line_accepts_dashed_reference_flags(tmp_path):
    _corpus(tmp_path / "corpus")
    cmd = [
        sys.executable,
        os.path.join(REPO_ROOT, "build_pretraining_dataset.py"),
        f"--corpus-dir={tmp_path / 'corpus'}",
        "--vocab-file",
        _vocab(tmp_path),
        f"--output-dir={tmp_path / 'out'}",
        "--max-seq-length=24",
        "--num-out-files=3",
        "--no-lower-case",
        "--blanks-separate-docs=false",
    ]
    subprocess.run(
        cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": REPO_ROOT}
    )
    info = json.loads((tmp_path / "out" / data.DATASET_INFO).read_text())
    assert (
        info["do_lower_case"],
        info["max_seq_length"],
        info["num_out_files"],
        info["blanks_separate_docs"],
    ) == (False, 24, 3, False)


def test_real_corpus_statistics():
    corpus = shared_path("corpora", "zh_fortunes.txt")
    vocab = shared_path("vocab", "zh_vocab.txt")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/corpus")
        with open(corpus, "rb") as src, open(f"{tmp}/corpus/zh.txt", "wb") as dst:
            dst.write(src.read()[:300_000].rsplit(b"\n", 1)[0])
        info = data.build_dataset(
            data.BuildOptions(
                corpus_dir=f"{tmp}/corpus",
                vocab_file=vocab,
                output_dir=f"{tmp}/out",
                num_out_files=2,
            )
        )
        counts = info["counts"]
        assert info["unk_rate"] < 0.05  # 2.1% measured: box-drawing characters and the like
        # Fortunes are short documents (52 tokens per example measured): examples never span two.
        assert 30 < counts["example_tokens"] / counts["examples"] <= 128
        assert counts["example_tokens"] <= counts["corpus_tokens"] + 3 * counts["examples"]
