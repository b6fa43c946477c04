"""TFRecord output: fast tf.train.Example encoding and atomic (write, then rename) shard files.

Building an Example through the protobuf API costs ~50 us in Python, which capped the dataset
builder at ~17k examples/s (measured); encoding the few fixed int64 features straight to the wire
format is ~6x faster and byte-compatible with `tf.io.parse_single_example` (see tests).
"""

import functools

import tensorflow as tf

from electra_tf import fileio


def _varint(value):
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


_SMALL = 1 << 15


@functools.cache
def _small_varints():
    return [_varint(v) for v in range(_SMALL)]


def pack_int64(values, max_value=None):
    """Packed varint encoding of non-negative ints (`max_value`, when known, skips a scan)."""
    top = max(values, default=0) if max_value is None else max_value
    if top < 128:
        return bytes(values)  # one byte per value, equal to the value
    if top < _SMALL:
        return b"".join(map(_small_varints().__getitem__, values))
    return b"".join(map(_varint, values))


def _length_delimited(field_tag, payload):
    size = len(payload)
    return field_tag + (_small_varints()[size] if size < _SMALL else _varint(size)) + payload


def encode_int64_example(features):
    """{name: list of non-negative ints} -> serialized tf.train.Example with Int64List features."""
    return encode_packed_example({name: pack_int64(values) for name, values in features.items()})


def encode_packed_example(packed_features):
    """{name: `pack_int64` bytes} -> serialized tf.train.Example with Int64List features."""
    entries = []
    for name, packed in packed_features.items():
        int64_list = _length_delimited(b"\x0a", packed)  # Int64List.value (packed)
        feature = _length_delimited(b"\x1a", int64_list)  # Feature.int64_list
        entry = _length_delimited(b"\x0a", name.encode()) + _length_delimited(b"\x12", feature)
        entries.append(_length_delimited(b"\x0a", entry))  # Features.feature map entry
    return _length_delimited(b"\x0a", b"".join(entries))  # Example.features


class AtomicRecordWriter:
    """A TFRecord file that appears under its final name only once complete (any tf.io.gfile path).

    `close()` finishes the temporary file and renames it; a caller that publishes several files
    together (the dataset builder: all shards, then `dataset_info.json`) calls `close(publish=False)`
    on each, then `publish()` on each once all are complete, and `discard()` on failure. A write
    that fails (a full disk) raises `OSError` naming the final file.
    """

    def __init__(self, path):
        self.path = path
        self.tmp_path = fileio.temporary_path(path)
        self._writer = None
        self._writer = self._guard(tf.io.TFRecordWriter, self.tmp_path)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except tf.errors.OpError as e:
            reason = e.message.replace(self.tmp_path + "; ", "").replace(self.tmp_path, "")
            raise OSError(f"Could not write {self.path}: {reason}") from None

    def write(self, record):
        self._guard(self._writer.write, record)

    def close(self, publish=True):
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self._guard(writer.close)
        if publish:
            self.publish()

    def publish(self):
        """Renames the closed temporary file to the final name."""
        tf.io.gfile.rename(self.tmp_path, self.path, overwrite=True)

    def discard(self):
        """Closes (ignoring errors) and removes the temporary file; the final name is untouched."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except tf.errors.OpError:
                pass
        if tf.io.gfile.exists(self.tmp_path):
            tf.io.gfile.remove(self.tmp_path)
