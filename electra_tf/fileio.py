"""Paths and small files on any `tf.io.gfile` filesystem (local, `gs://`, `ram://`).

The one owner of path joining and of atomic (write, then rename) text and JSON files: results,
configs and metadata appear complete under their final name or not at all.
"""

import json
import os
import re

import tensorflow as tf

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def has_scheme(path):
    """Whether `path` starts with a `scheme://` prefix (`gs://`, `ram://`, ...)."""
    return bool(_SCHEME_RE.match(path))


def join(base, *parts):
    """Joins path components with `/`, keeping `scheme://` prefixes intact.

    Behaves like `posixpath.join` (an absolute component, or one with a `scheme://` prefix,
    restarts the path) without `os.path`, so `join("gs://b", "x")` is `"gs://b/x"` and
    `join("ram://", "x")` is `"ram://x"` on every platform.
    """
    path = str(base)
    for part in parts:
        part = str(part)
        if not part:
            if path and not path.endswith("/"):
                path += "/"
            continue
        if part.startswith("/") or has_scheme(part) or not path:
            path = part
        elif path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def dirname(path):
    """The parent of `path`, keeping a `scheme://` prefix (`gs://b/x/y` -> `gs://b/x`)."""
    path = str(path).rstrip("/")
    match = _SCHEME_RE.match(path)
    prefix = match.group(0) if match else ""
    rest = path[len(prefix) :]
    return prefix + (rest.rsplit("/", 1)[0] if "/" in rest else "")


def basename(path):
    """The last component of `path` (trailing slashes ignored)."""
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def read_text(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def read_json(path, missing_ok=False):
    """A JSON file's value; None when it is absent and `missing_ok`.

    Raises:
      FileNotFoundError: absent and not `missing_ok`.
      ValueError: it does not parse; the message names the file, line and column.
    """
    if not tf.io.gfile.exists(path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected JSON") from None


def temporary_path(path):
    """Where a file is written before its atomic rename into `path`."""
    return f"{path}.tmp-{os.getpid()}"


def write_text_atomic(path, text):
    """Writes a text file via a temporary file and a rename, creating the parent folder."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path, data):
    """Writes `data` via a temporary file and a rename, creating the parent folder."""
    parent = dirname(path)
    if parent and not parent.endswith("://"):
        tf.io.gfile.makedirs(parent)
    tmp = temporary_path(path)
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json_atomic(path, value, sort_keys=False):
    """`value` as indented UTF-8 JSON (non-ASCII kept), written atomically."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n"
    write_text_atomic(path, text)


# The one rule for "this is not a text file", shared by the dataset builder and the vocabulary
# learner: more than one NUL byte per 1000 in the first 64 KiB. Text in UTF-8 (or any ASCII-based
# encoding) has none; compressed files (.gz, .zip, ...) and random bytes have about 1 in 256.
BINARY_SNIFF_BYTES = 1 << 16


def looks_binary(head):
    """Whether the first bytes of a file (up to `BINARY_SNIFF_BYTES` are looked at) are binary."""
    head = head[:BINARY_SNIFF_BYTES]
    return head.count(b"\x00") > len(head) // 1000


def is_binary_file(path):
    """`looks_binary` on the start of the file at `path` (any tf.io.gfile path)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return looks_binary(f.read(BINARY_SNIFF_BYTES))
