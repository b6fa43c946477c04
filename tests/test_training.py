"""The training machinery on its own: model directory, seeds, strategy, train loop; and the
pre-training records and input pipeline below it. Tiny models, seconds."""

import json
import logging as py_logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_shards

from electra_tf import fileio
from electra_tf.data import pretraining_data, records
from electra_tf.pretraining import input_pipeline
from electra_tf.training import distribution, loop, seeds
from electra_tf.training import model_dir as model_dir_lib


class _Tiny(keras.Model):
    def __init__(self, units=1):
        super().__init__(name="tiny")
        self.dense = keras.layers.Dense(units, name="dense")

    def call(self, x):
        return self.dense(x)


def _tiny_model(units=1):
    model = _Tiny(units)
    model(tf.zeros([1, 3]))
    return model


# ----- model directory -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["electra/layer_0/attention/query/kernel", "a.b/c..d/e", "x/.S"])
def test_checkpoint_keys_round_trip(path):
    key = model_dir_lib.checkpoint_key(path)
    assert key.startswith("model/") and key.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    assert model_dir_lib.variable_path(key) == path
    assert model_dir_lib.variable_path("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE") is None


def test_checkpoint_keys_are_what_tf_train_checkpoint_writes(tmp_path):
    model = _tiny_model()
    prefix = model_dir_lib.new_checkpoint(model).save(str(tmp_path / "ckpt"))
    found = model_dir_lib.checkpoint_variables(prefix)
    assert set(found) == {"tiny/dense/kernel", "tiny/dense/bias"}
    assert found["tiny/dense/kernel"] == model_dir_lib.checkpoint_key("tiny/dense/kernel")


def test_restore_by_name_from_folder_or_prefix_and_clear_errors(tmp_path):
    source = _tiny_model()
    source.dense.kernel.assign(np.arange(3, dtype=np.float32)[:, None])
    manager = tf.train.CheckpointManager(
        model_dir_lib.new_checkpoint(source), str(tmp_path), max_to_keep=None
    )
    prefix = manager.save(checkpoint_number=7)
    target = _tiny_model()
    assert model_dir_lib.restore_variables(target.weights, str(tmp_path)) == prefix
    np.testing.assert_array_equal(target.dense.kernel.numpy(), source.dense.kernel.numpy())
    assert model_dir_lib.resolve_checkpoint(prefix) == prefix
    assert model_dir_lib.checkpoint_dir(prefix) == str(tmp_path)
    assert model_dir_lib.checkpoint_dir(str(tmp_path)) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="init_checkpoint .*missing not found"):
        model_dir_lib.resolve_checkpoint(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--input .*folder without checkpoints"):
        model_dir_lib.resolve_checkpoint(str(tmp_path / "empty"), "--input")
    wider = _tiny_model(units=2)
    with pytest.raises(ValueError, match="has shape \\[3, 2\\] but checkpoint"):
        model_dir_lib.restore_variables(wider.weights, str(tmp_path))
    other = keras.layers.Dense(1, name="other")
    other.build((None, 3))
    with pytest.raises(ValueError, match="lacks 2 of the model's 2 variables, e.g. other/kernel"):
        model_dir_lib.restore_variables(other.weights, str(tmp_path))


def test_description_files_are_written_atomically_and_read_back(ram_dir):
    model_dir_lib.write(ram_dir, model_dir_lib.ENCODER_CONFIG, {"hidden_size": 8})
    assert model_dir_lib.read(ram_dir, model_dir_lib.ENCODER_CONFIG) == {"hidden_size": 8}
    assert not [n for n in tf.io.gfile.listdir(ram_dir) if ".tmp-" in n]
    described = model_dir_lib.describe(ram_dir)
    assert described[model_dir_lib.ENCODER_CONFIG] == {"hidden_size": 8}
    assert described[model_dir_lib.TASK_INFO] is None
    with tf.io.gfile.GFile(fileio.join(ram_dir, model_dir_lib.TASK_INFO), "w") as f:
        f.write("{oops")
    with pytest.raises(ValueError, match=f"{ram_dir}/task_info.json: invalid JSON at line 1"):
        model_dir_lib.describe(ram_dir)


def test_fileio_paths_keep_schemes():
    assert fileio.join("gs://b", "x", "y") == "gs://b/x/y"
    assert fileio.join("ram://", "x") == "ram://x"
    assert fileio.dirname("gs://b/x/y") == "gs://b/x"
    assert fileio.dirname("gs://b/x/") == "gs://b"
    assert fileio.basename("gs://b/models/m/") == "m"


# ----- seeds and strategy ---------------------------------------------------------------------------


def test_seeds_differ_by_every_input_and_repeat_exactly():
    base = seeds.derive_seed(1, 10, 0).numpy().tolist()
    assert seeds.derive_seed(1, 10, 0).numpy().tolist() == base
    others = [seeds.derive_seed(*a).numpy().tolist() for a in [(2, 10, 0), (1, 11, 0), (1, 10, 1)]]
    assert all(o != base for o in others) and len({tuple(o) for o in others}) == 3


def test_step_seed_is_the_replica_seed_inside_strategy_run():
    strategy = distribution.create_strategy("cpu")
    got = strategy.run(lambda: seeds.step_seed(5, tf.constant(3, tf.int64)))
    expected = seeds.derive_seed(5, 3, 0)
    np.testing.assert_array_equal(strategy.experimental_local_results(got)[0], expected)


def test_strategy_choice_chief_and_precision():
    strategy = distribution.create_strategy("cpu")
    assert strategy.num_replicas_in_sync == 1
    assert distribution.is_chief(strategy) and distribution.worker_index(strategy) == 0
    with pytest.raises(ValueError, match="Unknown strategy 'gpu-please'"):
        distribution.create_strategy("gpu-please")
    try:
        distribution.set_precision_policy("bfloat16")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        distribution.set_precision_policy(None)
    assert keras.config.dtype_policy().name == "float32"


# ----- train loop ----------------------------------------------------------------------------------


def _regression_loop(
    model_dir, num_train_steps, save_every, data_scale=1.0, iterations=2, lr=0.1, log_every=None
):
    strategy = distribution.create_strategy("cpu")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = _tiny_model()
        optimizer = keras.optimizers.SGD(lr)
        optimizer.build(model.trainable_variables)
    x = np.random.RandomState(0).randn(64, 3).astype(np.float32) * data_scale
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)

    def dataset_fn(context):
        del context
        return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8)

    def loss_fn(batch, seed, training):
        del seed, training
        loss = tf.reduce_mean(tf.square(model(batch[0]) - batch[1]))
        return loss, {}

    settings = loop.LoopSettings(
        model_dir=model_dir,
        num_train_steps=num_train_steps,
        iterations_per_loop=iterations,
        save_checkpoints_steps=save_every,
        global_batch_size=8,
        log_every_steps=log_every,
    )
    return loop.TrainLoop(strategy, model, optimizer, loss_fn, dataset_fn, settings), model


def test_loop_trains_checkpoints_and_resumes_where_it_stopped(tmp_path, caplog):
    train_loop, model = _regression_loop(str(tmp_path), num_train_steps=12, save_every=4)
    train_loop.settings.flops_per_example = 3e9
    with caplog.at_level(py_logging.INFO):
        first = train_loop.train(stop_at=4)
    assert int(train_loop.optimizer.iterations.numpy()) == 4
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    assert "ETA" in caplog.text and "examples/s" in caplog.text
    assert "model TFLOP/s" in caplog.text  # examples/s x flops_per_example, also in TensorBoard
    tags = {
        v.tag
        for path in tf.io.gfile.glob(f"{tmp_path}/events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(path)
        for v in event.summary.value
    }
    assert "train/model_tflops_per_second" in tags
    resumed, model2 = _regression_loop(str(tmp_path), num_train_steps=12, save_every=4)
    last = resumed.train()
    assert int(resumed.optimizer.iterations.numpy()) == 12
    assert last["loss"] < first["loss"]
    # The same 12 steps without the interruption end at the same weights.
    straight, model3 = _regression_loop(str(tmp_path / "straight"), 12, save_every=4)
    straight.train()
    np.testing.assert_allclose(model2.dense.kernel.numpy(), model3.dense.kernel.numpy(), atol=1e-6)


def test_loop_stops_on_a_non_finite_loss_without_saving(tmp_path):
    train_loop, _ = _regression_loop(str(tmp_path), 8, save_every=2, data_scale=np.inf)
    with pytest.raises(loop.NonFiniteLossError, match="non-finite between steps 0 and 2"):
        train_loop.train()
    assert tf.train.latest_checkpoint(str(tmp_path)) is None


# ----- records and the pre-training input pipeline ----------------------------------------------------


def test_fast_example_encoding_parses_like_the_protobuf_api():
    features = {"input_ids": [0, 1, 127, 128, 300, 70000], "input_mask": [1] * 6}
    fast = records.encode_int64_example(features)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                k: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                for k, v in features.items()
            }
        )
    )
    spec = {k: tf.io.FixedLenFeature([6], tf.int64) for k in features}
    ours = tf.io.parse_single_example(fast, spec)
    theirs = tf.io.parse_single_example(example.SerializeToString(), spec)
    for k in features:
        assert ours[k].numpy().tolist() == theirs[k].numpy().tolist() == features[k]


def test_record_files_appear_only_when_complete(tmp_path):
    path = str(tmp_path / "shard")
    writer = records.AtomicRecordWriter(path)
    writer.write(b"x")
    assert not tf.io.gfile.exists(path)
    writer.close()
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"x"]
    assert tf.io.gfile.listdir(str(tmp_path)) == ["shard"]


def test_input_pipeline_static_shapes_order_and_sharding(tmp_path):
    files = write_shards(str(tmp_path), 2, 5, 8)
    (tmp_path / "pretrain_data.tfrecord-9-of-9.tmp-1").write_text("partial")
    listed = input_pipeline.list_input_files(str(tmp_path / "pretrain_data.tfrecord*"))
    assert listed == files  # unfinished temporary files are ignored
    eval_data = input_pipeline.make_dataset(files, 4, 8, seed=0, is_training=False)
    assert eval_data.element_spec["input_ids"].shape.as_list() == [4, 8]
    firsts = [int(b["input_ids"][i, 0]) for b in eval_data for i in range(4)]
    again = [int(b["input_ids"][i, 0]) for b in eval_data for i in range(4)]
    assert firsts == again and len(firsts) == 8  # 10 examples, drop_remainder
    assert sorted(firsts) == sorted(set(firsts))
    train = input_pipeline.make_dataset(files, 4, 8, seed=3, is_training=True)
    batches = [b["input_ids"][:, 0].numpy().tolist() for b in train.take(25)]
    seen = {i for b in batches for i in b}
    assert seen == {0, 1, 2, 3, 4, 1000, 1001, 1002, 1003, 1004}  # repeats over every example
    context = tf.distribute.InputContext(2, 1, 2)
    shard = input_pipeline.make_dataset(files, 2, 8, 0, False, input_context=context)
    assert {int(b["input_ids"][i, 0]) // 1000 for b in shard for i in range(2)} == {1}
    with pytest.raises(FileNotFoundError, match="No pre-training data matches"):
        input_pipeline.list_input_files(str(tmp_path / "nothing*"))


def test_dataset_info_mismatch_is_refused(tmp_path):
    write_shards(str(tmp_path), 1, 2, 8)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n")
    info = {"max_seq_length": 8, "vocab_file": str(vocab), "vocab_sha256": "0" * 64}
    (tmp_path / pretraining_data.DATASET_INFO).write_text(json.dumps(info))
    pattern = str(tmp_path / "pretrain_data.tfrecord*")
    with pytest.raises(input_pipeline.DataMismatchError, match="max_seq_length=8 but the config"):
        input_pipeline.check_dataset_info(pattern, str(vocab), 16)
    with pytest.raises(input_pipeline.DataMismatchError, match="which differs from"):
        input_pipeline.check_dataset_info(pattern, str(vocab), 8)


def _finite(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return all(
        np.all(np.isfinite(reader.get_tensor(key)))
        for key in model_dir_lib.checkpoint_variables(prefix).values()
    )


def test_weights_that_diverge_are_never_checkpointed_and_resume_is_sane(tmp_path):
    """Issue 10.1: the update that breaks the weights comes before the loss shows it; saving
    every step used to keep NaN weights as the "last good checkpoint"."""
    diverging, _ = _regression_loop(str(tmp_path), 50, save_every=1, iterations=1, lr=1e6)
    with pytest.raises(loop.NonFiniteLossError, match="last good checkpoint"):
        diverging.train()
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest is not None and _finite(latest)
    step = int(latest.rsplit("-", 1)[1])
    resumed, model = _regression_loop(str(tmp_path), 60, save_every=10, lr=0.01)
    assert resumed.restore() == step  # the newest checkpoint, and its weights are finite
    assert np.all(np.isfinite(model.dense.kernel.numpy()))


def test_restore_skips_checkpoints_with_non_finite_weights(tmp_path):
    first, model = _regression_loop(str(tmp_path), 4, save_every=2)
    first.train()  # ckpt-2 and ckpt-4, finite
    model.dense.kernel.assign(np.full((3, 1), np.nan, np.float32))
    first.optimizer.iterations.assign(6)
    first.manager.save(checkpoint_number=6)  # as an older version would have
    again, _ = _regression_loop(str(tmp_path), 8, save_every=2)
    assert again.restore() == 4


def test_progress_is_logged_every_log_every_steps_whatever_iterations_per_loop(tmp_path, caplog):
    """Issue 10.15: a 1000-step host loop used to print nothing until it ended."""
    quiet, _ = _regression_loop(str(tmp_path), 40, 1000, iterations=1000, log_every=10)
    with caplog.at_level(py_logging.INFO):
        quiet.train()
    lines = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == [
        f"step {s}/40 ({s * 100 // 40}%)" for s in (10, 20, 30, 40)
    ]


def test_host_loop_boundaries_depend_on_steps_only(tmp_path):
    """The same steps cut into other host loops can round differently, so boundaries (and with
    them resumed runs) must not depend on timing: two identical runs give identical weights."""
    a, model_a = _regression_loop(str(tmp_path / "a"), 12, 4, iterations=5, log_every=3)
    b, model_b = _regression_loop(str(tmp_path / "b"), 12, 4, iterations=5, log_every=3)
    a.train()
    b.train()
    np.testing.assert_array_equal(model_a.dense.kernel.numpy(), model_b.dense.kernel.numpy())
