"""Faults on the data side: every promise the dataset builder, the vocabulary learner and the
pre-training input keep when processes are killed, disks fill up, files are corrupt or input is odd.

- killed builds: the workers die with their parent, nothing is published, a rerun gives the
  same bytes, and pre-training refuses data without `dataset_info.json`;
- corrupt shards (truncated record, bad CRC): an error naming the shard, or skip-and-count;
- a full disk: a clear error, no shard under its final name, no `dataset_info.json`;
- silent loss: long lines and documents truncated by packing are counted and warned about; a lone
  CR is a line break;
- wrong input: binary corpus files are skipped by `electra-learn-vocab`, an empty vocabulary and an
  output folder inside the corpus are one-line errors.
"""

import gzip
import json
import logging as py_logging
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import REPO_ROOT, build_options, write_shards

import build_pretraining_dataset
from electra_tf import tokenization
from electra_tf import vocab as vocab_lib
from electra_tf.data import pretraining_data as data
from electra_tf.pretraining import input_pipeline

WORDS = ["the", "cat", "dogs", "sat", "on", "a", "mat", "red", "big", "xyz"]


def _vocab(directory):
    words = "the cat dog sat on mat a big red ##s ##ed . ,".split()
    path = os.path.join(directory, "vocab.txt")
    with open(path, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    return path


def _text(n_lines, seed=0):
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))) + ".")
        if i % 7 == 6:
            lines.append("")
    return "\n".join(lines) + "\n"


def _shards(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(data.SHARD_PREFIX))


def _records(directory):
    out = []
    for name in _shards(directory):
        out += [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(directory, name))]
    return out


# ----- killed builds ------------------------------------------------------------------------------
def _process_table():
    """{pid: (parent pid, state)} of every process, from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        table[int(name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid):
    table = _process_table()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids):
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def _temporary_suffixes(out):
    names = os.listdir(out) if out.exists() else []
    return {n.rsplit(".tmp-", 1)[1] for n in names if ".tmp-" in n}


def _kill_build(tmp_path, sig):
    """Starts a 2-process build whose second worker has ~60 MB to read (a minute's work), kills the
    parent with `sig` once both workers are writing, and checks that every worker dies with it.

    Returns (command, corpus dir, output dir, the small text to put in the big file's place).
    """
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(3000, seed=1))
    small = _text(3000, seed=2)
    (corpus / "b.txt").write_text(small * 600)  # the second file: the second worker's
    out = tmp_path / "out"
    command = [
        "build_pretraining_dataset.py",
        f"--corpus_dir={corpus}",
        f"--vocab_file={_vocab(str(tmp_path))}",
        f"--output_dir={out}",
        "--max_seq_length=32",
        "--num_out_files=4",
        "--num_processes=2",
    ]
    log = open(tmp_path / "build.log", "w")
    parent = subprocess.Popen(
        [sys.executable, *command],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    workers = set()
    try:
        deadline = time.monotonic() + 180
        while len(_temporary_suffixes(out)) < 2:  # both workers have opened their shards
            assert parent.poll() is None, (tmp_path / "build.log").read_text()
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = _descendants(parent.pid)
        assert {str(p) for p in workers} >= _temporary_suffixes(out)
        time.sleep(1.0)  # the workers read and write records
        os.kill(parent.pid, sig)
        parent.wait(timeout=60)
        deadline = time.monotonic() + 15
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = _alive(workers)
        assert not survivors, f"worker processes {sorted(survivors)} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in _alive(workers):  # only the processes this test started
            os.kill(pid, signal.SIGKILL)
        log.close()
        (corpus / "b.txt").write_text(small)
    return command, corpus, out


def _assert_nothing_accepted(out):
    time.sleep(1.0)  # a surviving worker would publish its shards now
    assert data.DATASET_INFO not in os.listdir(out)
    pattern = str(out / f"{data.SHARD_PREFIX}*")  # whatever was published, it is refused
    with pytest.raises(input_pipeline.DataMismatchError, match="dataset_info.json"):
        input_pipeline.check_dataset_info(pattern, None, 32)


def test_sigterm_on_the_parent_stops_every_worker_and_publishes_nothing(tmp_path):
    _, _, out = _kill_build(tmp_path, signal.SIGTERM)
    _assert_nothing_accepted(out)
    assert os.listdir(out) == []  # nothing published, the workers' temporary files removed
    assert "SIGTERM" in (tmp_path / "build.log").read_text()


def test_sigkill_on_the_parent_kills_every_worker_and_a_rerun_gives_the_same_bytes(tmp_path):
    command, _, out = _kill_build(tmp_path, signal.SIGKILL)
    _assert_nothing_accepted(out)
    # The same command again: the killed build published nothing, so no --overwrite is needed
    # (its temporary files are removed).
    assert build_pretraining_dataset.COMMAND(command) == 0
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
    clean = tmp_path / "clean"
    uninterrupted = command[:3] + [f"--output_dir={clean}"] + command[4:]
    assert build_pretraining_dataset.COMMAND(uninterrupted) == 0
    assert _shards(out) == _shards(clean) == [data.shard_name(i, 4) for i in range(4)]
    for name in _shards(out):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_pretraining_refuses_data_without_dataset_info_unless_told(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(300))
    vocab = _vocab(str(tmp_path))
    data.build_dataset(build_options(corpus, vocab, tmp_path / "out"))
    pattern = str(tmp_path / "out" / f"{data.SHARD_PREFIX}*")
    assert input_pipeline.check_dataset_info(pattern, vocab, 32)["max_seq_length"] == 32
    os.remove(tmp_path / "out" / data.DATASET_INFO)
    with pytest.raises(input_pipeline.DataMismatchError) as error:
        input_pipeline.check_dataset_info(pattern, vocab, 32)
    message = str(error.value)
    assert str(tmp_path / "out" / data.DATASET_INFO) in message and "\n" not in message
    assert "build_pretraining_dataset.py" in message and "allow_missing_dataset_info" in message
    with caplog.at_level(py_logging.WARNING):
        assert (
            input_pipeline.check_dataset_info(pattern, vocab, 32, allow_missing_info=True) is None
        )
    assert "without dataset_info.json" in caplog.text


def test_dataset_info_is_written_last_and_removed_first(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(300))
    vocab = _vocab(str(tmp_path))
    out = tmp_path / "out"
    data.build_dataset(build_options(corpus, vocab, out))
    real_write = data.fileio.write_text_atomic
    seen = []

    def spy(path, text):
        seen.append(sorted(os.listdir(out)))
        real_write(path, text)

    monkeypatch.setattr(data.fileio, "write_text_atomic", spy)
    real_remove = tf.io.gfile.remove
    removed = []
    monkeypatch.setattr(tf.io.gfile, "remove", lambda p: (removed.append(p), real_remove(p)))
    data.build_dataset(build_options(corpus, vocab, out, overwrite=True))
    assert removed[0].endswith("/" + data.DATASET_INFO)  # an overwrite unpublishes first
    assert seen == [[data.shard_name(i, 4) for i in range(4)]]  # every shard final, no info yet


# ----- corrupt shards -----------------------------------------------------------------------------
def _corrupt(path, how):
    raw = bytearray(open(path, "rb").read())
    if how == "truncated":
        raw = raw[:-10]
    else:  # flip a bit in the third record's data: its CRC no longer matches
        record = len(raw) // 6
        raw[2 * record + 20] ^= 1
    with open(path, "wb") as f:
        f.write(bytes(raw))


@pytest.mark.parametrize("how", ["truncated", "bad_crc"])
@pytest.mark.parametrize("is_training", [False, True])
def test_a_corrupt_shard_is_an_error_naming_the_file(tmp_path, how, is_training):
    files = write_shards(str(tmp_path))
    _corrupt(files[1], how)
    dataset = input_pipeline.make_dataset(files, 2, 8, seed=0, is_training=is_training)
    with pytest.raises(tf.errors.OpError) as error:
        for _ in dataset.take(20):
            pass
    message = str(error.value)
    assert files[1] in message and "corrupt" in message and "rebuild" in message.lower()
    assert files[0] not in message


@pytest.mark.parametrize("how", ["truncated", "bad_crc"])
def test_corrupt_shards_are_skipped_and_counted_when_asked(tmp_path, how, capfd):
    files = write_shards(str(tmp_path))
    _corrupt(files[1], how)
    dataset = input_pipeline.make_dataset(
        files, 1, 8, seed=0, is_training=False, on_corrupt_shard="skip"
    )
    firsts = sorted(int(b["input_ids"][0, 0]) for b in dataset)
    assert firsts[:6] == [0, 1, 2, 3, 4, 5]  # the good shard whole
    kept = len(firsts) - 6
    assert kept == (5 if how == "truncated" else 2)  # the records before the damage
    log = capfd.readouterr().err
    assert files[1] in log and "skipped" in log and "corrupt" in log
    with pytest.raises(ValueError, match="on_corrupt_shard"):
        input_pipeline.make_dataset(files, 1, 8, seed=0, on_corrupt_shard="ignore")


def test_good_shards_read_as_before(tmp_path):
    files = write_shards(str(tmp_path), n_files=3, per_file=5)
    dataset = input_pipeline.make_dataset(files, 5, 8, seed=0, is_training=False)
    firsts = sorted(int(x) for b in dataset for x in b["input_ids"][:, 0])
    assert firsts == [f * 1000 + i for f in range(3) for i in range(5)]


# ----- a full disk --------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted at tmp_path/disk (skips where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # busy: detach it anyway


@pytest.mark.parametrize("num_processes", [1, 2])
def test_a_full_disk_fails_clearly_and_publishes_nothing(tmp_path, small_disk, num_processes):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):  # ~2.7 MB of examples, more than twice the disk
        (corpus / f"p{i}.txt").write_text(_text(16000, seed=i))
    out = small_disk / "out"
    opts = build_options(corpus, _vocab(str(tmp_path)), out, max_seq_length=64)
    opts.num_processes = num_processes
    with pytest.raises(OSError) as error:
        data.build_dataset(opts)
    message = str(error.value)
    assert "No space left on device" in message and str(out) in message
    assert "\n" not in message.strip()
    assert os.listdir(out) == []  # no shard under its final name, no info, no temporary file


# ----- silent loss --------------------------------------------------------------------------------
def test_long_lines_truncated_by_packing_are_counted_and_warned(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(200))
    (corpus / "b_long.txt").write_text("short line.\n" + "the cat sat " * 2000 + "\nthe end.\n")
    with caplog.at_level(py_logging.WARNING):
        info = data.build_dataset(build_options(corpus, _vocab(str(tmp_path)), tmp_path / "out"))
    counts = info["counts"]
    assert counts["truncated_tokens"] >= 6000 - 32
    assert counts["heavily_truncated_examples"] == 1
    assert counts["heavily_truncated_tokens"] >= 6000 - 32
    saved = json.loads((tmp_path / "out" / data.DATASET_INFO).read_text())
    assert saved["counts"]["heavily_truncated_examples"] == 1
    assert "b_long.txt" in caplog.text and "truncated" in caplog.text
    assert str(counts["heavily_truncated_tokens"]) in caplog.text


def test_ordinary_packing_loss_is_counted_but_not_warned(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(600))
    with caplog.at_level(py_logging.WARNING):
        info = data.build_dataset(build_options(corpus, _vocab(str(tmp_path)), tmp_path / "out"))
    assert info["counts"]["heavily_truncated_examples"] == 0
    assert info["counts"]["truncated_tokens"] >= 0
    assert "truncated" not in caplog.text


def _examples_of(tmp_path, name, raw):
    corpus = tmp_path / f"corpus_{name}"
    corpus.mkdir()
    (corpus / "c.txt").write_bytes(raw)
    info = data.build_dataset(
        build_options(corpus, _vocab(str(tmp_path)), tmp_path / f"out_{name}")
    )
    return _records(str(tmp_path / f"out_{name}")), info["counts"]


def test_a_lone_cr_is_a_line_break_and_crlf_one_break(tmp_path):
    text = _text(400)
    lf = _examples_of(tmp_path, "lf", text.encode())
    cr = _examples_of(tmp_path, "cr", text.replace("\n", "\r").encode())
    crlf = _examples_of(tmp_path, "crlf", text.replace("\n", "\r\n").encode())
    assert lf[1]["lines"] == cr[1]["lines"] == crlf[1]["lines"] > 300
    assert lf[1]["documents"] == cr[1]["documents"] == crlf[1]["documents"] > 50
    assert lf[0] == cr[0] == crlf[0]


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 7, 64])
def test_line_breaks_split_across_read_blocks(tmp_path, block_bytes):
    path = tmp_path / "c.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n\r\nfour\r\r\nfive\r")
    stats = data._new_stats()
    lines = [x for block in data.read_line_blocks(str(path), stats, block_bytes) for x in block]
    assert [x.strip() for x in lines] == ["one", "two", "three", "", "four", "", "five"]


# ----- wrong input --------------------------------------------------------------------------------
def test_learn_vocab_skips_and_reports_binary_files(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = _text(300)
    (corpus / "a.txt").write_text(text)
    (corpus / "b.txt.gz").write_bytes(gzip.compress(("zzqx wvvk " * 5000).encode()))
    (corpus / "c.bin").write_bytes(random.Random(0).randbytes(50_000))
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text(text)
    out, expected = tmp_path / "vocab.txt", tmp_path / "expected.txt"
    argv = ["electra-learn-vocab", "--vocab_size=60", "--limit_alphabet=40"]
    with caplog.at_level(py_logging.WARNING):
        assert vocab_lib.COMMAND(argv + [f"--corpus_dir={corpus}", f"--output_file={out}"]) == 0
    assert "b.txt.gz" in caplog.text and "c.bin" in caplog.text and "binary" in caplog.text
    assert "2 binary" in caplog.text
    assert (
        vocab_lib.COMMAND(
            argv + [f"--corpus_dir={tmp_path / 'only_text'}", f"--output_file={expected}"]
        )
        == 0
    )
    assert out.read_text() == expected.read_text()
    # The builder and the learner share one rule.
    assert vocab_lib.fileio.looks_binary is data.fileio.looks_binary


def test_learn_vocab_from_binary_files_only_is_a_one_line_error(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "c.bin").write_bytes(random.Random(0).randbytes(5000))
    argv = ["electra-learn-vocab", f"--corpus_dir={corpus}", f"--output_file={tmp_path / 'v.txt'}"]
    assert vocab_lib.COMMAND(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "c.bin" in err and "binary" in err
    assert not (tmp_path / "v.txt").exists()


def _refused_build(capsys, corpus, vocab, out, *flags):
    """build_pretraining_dataset.py on these paths exits with status 1; returns its stderr."""
    argv = [
        "build_pretraining_dataset.py",
        f"--corpus_dir={corpus}",
        f"--vocab_file={vocab}",
        f"--output_dir={out}",
        *flags,
    ]
    assert build_pretraining_dataset.COMMAND(argv) == 1
    return capsys.readouterr().err.strip()


def test_an_empty_vocab_file_is_a_one_line_error(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(50))
    empty = tmp_path / "empty_vocab.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match=f"{empty}.*empty"):
        tokenization.FullTokenizer(str(empty))
    out = tmp_path / "out"
    err = _refused_build(capsys, corpus, empty, out)
    assert len(err.splitlines()) == 1 and str(empty) in err and "empty" in err, err
    assert err.startswith("build_pretraining_dataset.py: error: ")
    assert not out.exists()


@pytest.mark.parametrize("where", ["same", "inside", "same_with_slash"])
def test_output_in_the_corpus_is_refused_before_touching_anything(tmp_path, capsys, where):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(50))
    # Output of an earlier build there: --overwrite would remove it.
    (corpus / data.shard_name(0, 1)).write_bytes(b"")
    before = sorted(os.listdir(corpus))
    out = {"same": str(corpus), "inside": str(corpus / "out"), "same_with_slash": f"{corpus}/"}
    err = _refused_build(capsys, corpus, _vocab(str(tmp_path)), out[where], "--overwrite")
    assert len(err.splitlines()) == 1 and "corpus" in err and str(corpus) in err, err
    assert sorted(os.listdir(corpus)) == before


def test_a_vocab_without_cls_is_refused_before_an_overwrite_removes_anything(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(_text(100))
    out = tmp_path / "out"
    data.build_dataset(build_options(corpus, _vocab(str(tmp_path)), out))
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    no_cls = tmp_path / "no_cls.txt"
    no_cls.write_text("[PAD]\n[UNK]\n[SEP]\nthe\n")
    err = _refused_build(capsys, corpus, no_cls, out, "--overwrite")
    assert len(err.splitlines()) == 1 and str(no_cls) in err and "[CLS]" in err, err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
