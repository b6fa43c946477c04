"""Every config key has a test that shows it takes effect (issue 11, "every switch proven").

One entry per key of `PretrainingConfig` and `FinetuningConfig`: the test that shows the key
changes what its doc says (a refused key: the test of its refusal; a location key: a test that
reads or writes where the key points). The meta-tests fail when a key has no entry (add a test for
a new key), when an entry names a file or test function that does not exist, and when an entry
names a key the config no longer has.
"""

import ast
import os

import pytest

from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.pretraining.config import PretrainingConfig

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

_SWITCHES = "test_switches.py::"
_FT = "test_finetuning_switches.py::"
_PRE_LOOP = _SWITCHES + "test_loop_and_eval_switches_drive_the_pretrainer"
_STRATEGY = _SWITCHES + "test_strategy_precision_and_tpu_keys_reach_the_strategy"
_GENERATOR = _SWITCHES + "test_generator_switches_decide_which_variables_exist"
_SCHEDULE = _SWITCHES + "test_lr_decay_power_and_warmup_shape_the_schedule"
_PRE_RAM = "test_pretraining.py::test_model_dir_on_ram_filesystem"
_PRE_ERRORS = "test_pretraining.py::test_bad_data_and_config_errors"
_ELECTRIC = "test_electric.py::test_get_config_round_trip_keeps_sharing_and_directions"

PRETRAINING = {
    "allow_missing_dataset_info": "test_faults.py::test_data_without_dataset_info_needs_the_explicit_hparam",
    "debug": "test_config.py::test_passed_hparams_override_size_and_debug_defaults",
    "disallow_correct": _SWITCHES
    + "test_temperature_and_disallow_correct_change_the_sampled_tokens",
    "disc_weight": _SWITCHES + "test_gen_and_disc_weights_set_the_loss_mix",
    "do_eval": _SWITCHES + "test_seed_do_train_and_do_eval",
    # Recorded in the model directory; fine-tuning inherits it (the model there is cased).
    "do_lower_case": "test_faults.py::test_pretraining_casing_must_be_the_datas",
    "do_train": _SWITCHES + "test_seed_do_train_and_do_eval",
    "electra_objective": _GENERATOR,
    "electric_objective": _ELECTRIC,
    "embedding_size": _SWITCHES + "test_embedding_size_adds_a_projection",
    "eval_batch_size": _PRE_LOOP,
    "gcp_project": _STRATEGY,
    "gen_weight": _SWITCHES + "test_gen_and_disc_weights_set_the_loss_mix",
    "generator_hidden_size": _GENERATOR,
    "generator_layers": _GENERATOR,
    "iterations_per_loop": _PRE_LOOP,
    "jit_compile": _PRE_LOOP,
    "keep_checkpoint_max": _PRE_LOOP,
    "learning_rate": _SCHEDULE,
    "log_every_steps": "test_fidelity.py::test_log_every_steps_sets_the_logging_interval",
    "lr_decay_power": _SCHEDULE,
    "mask_prob": _SWITCHES + "test_mask_prob_sets_the_number_of_masked_tokens",
    "mask_strategy": _SWITCHES + "test_whole_word_masks_every_piece_of_a_word_together",
    "masking_with_replacement": "test_fidelity.py::test_with_replacement_writes_the_floor_mean_of_the_samples_of_a_duplicate_draw",
    "max_predictions_per_seq": _SWITCHES + "test_max_predictions_per_seq_caps_the_masked_positions",
    "max_seq_length": _PRE_ERRORS,  # checked against the data's length before any step
    "mixed_precision": _STRATEGY,
    "model_dir": _PRE_RAM,
    "model_hparam_overrides": "test_config.py::test_overriding_hidden_size_rederives_heads_like_the_reference",
    "model_name": "test_config.py::test_reference_defaults",  # <data_dir>/models/<model_name>
    "model_size": "test_config.py::test_bundled_sizes",
    "num_eval_steps": _PRE_LOOP,
    "num_tpu_cores": "test_fidelity.py::test_pretraining_keys_read_by_nothing_are_refused",
    "num_train_steps": _PRE_LOOP,
    "num_warmup_steps": _SCHEDULE,
    "on_corrupt_shard": "test_faults_data.py::test_corrupt_shards_are_skipped_and_counted_when_asked",
    "pretrain_tfrecords": _PRE_RAM,
    "results_json": _PRE_RAM,
    "results_pkl": "test_fidelity.py::test_results_pkl_is_written",
    "results_txt": _PRE_RAM,
    "save_checkpoints_steps": _PRE_LOOP,
    "seed": _SWITCHES + "test_seed_do_train_and_do_eval",
    "strategy": _STRATEGY,
    "temperature": _SWITCHES + "test_temperature_and_disallow_correct_change_the_sampled_tokens",
    "tpu_job_name": "test_fidelity.py::test_pretraining_keys_read_by_nothing_are_refused",
    "tpu_name": _STRATEGY,
    "tpu_zone": _STRATEGY,
    "train_batch_size": _PRE_LOOP,
    "two_tower_generator": _ELECTRIC,
    "uniform_generator": _GENERATOR,
    "untied_generator": _GENERATOR,
    "untied_generator_embeddings": _GENERATOR,
    "use_tpu": _STRATEGY,
    "vocab_file": _PRE_ERRORS,  # another vocabulary than the data's is refused, naming both
    "vocab_size": _PRE_ERRORS,  # fewer embeddings than the vocabulary's tokens is refused
    "weight_decay_rate": _SWITCHES + "test_weight_decay_rate_shrinks_kernels_with_a_zero_gradient",
}

_FT_HEAD = "test_finetuning_switches.py::test_span_qa_switches_build_the_head_they_name"
_FT_DECODE = "test_finetuning_switches.py::test_qa_decoding_switches_choose_the_answers"
_FT_WINDOWS = "test_finetuning_switches.py::test_qa_windows_follow_doc_stride_and_max_query_length"
_FT_TRIALS = "test_finetuning_switches.py::test_trials_eval_and_test_outputs_go_where_the_keys_say"
_FT_LOOP = "test_finetuning_switches.py::test_loop_switches_drive_the_finetuning_train_loop"
_FT_UPDATE = "test_finetuning_switches.py::test_warmup_proportion_learning_rate_and_weight_decay_set_the_update"
_FT_BATCHES = (
    "test_finetuning_switches.py::test_batch_sizes_cut_the_batches_and_never_change_the_outputs"
)
_FT_STEPS = "test_finetuning_switches.py::test_num_train_epochs_and_train_batch_size_set_the_steps"
_FT_SIZES = "test_finetuning_switches.py::test_size_keys_shape_a_model_trained_from_scratch"
_FT_DEFAULTS = "test_finetuning.py::test_defaults_and_config_errors"
_FT_LAYERWISE = "test_finetuning.py::test_layerwise_learning_rates"
_FT_OTHER_FS = (
    "test_finetuning.py::test_trials_json_spec_task_and_init_checkpoint_on_another_filesystem"
)
_FT_VOCAB = "test_faults.py::test_a_different_vocabulary_is_refused_naming_both_files"
_FT_REFUSED = "test_fidelity.py::test_finetuning_keys_read_by_nothing_are_refused"

FINETUNING = {
    "answerable_classifier": _FT_HEAD,
    "answerable_uses_start_logits": _FT_HEAD,
    "answerable_weight": _FT_HEAD,
    "beam_size": _FT_HEAD,
    # The folder every default path derives from (the pre-trained model, vocabulary, results).
    "data_dir": _FT_DEFAULTS,
    "debug": "test_faults.py::test_debug_finetuning_loads_the_debug_pretrained_checkpoint",
    "do_eval": _FT_TRIALS,
    "do_lower_case": _FT_VOCAB,
    "do_train": _FT_TRIALS,
    "doc_stride": _FT_WINDOWS,
    "double_unordered": _FT + "test_double_unordered_adds_the_swapped_pairs_of_a_symmetric_task",
    "embedding_size": _FT_SIZES,
    "eval_batch_size": _FT_BATCHES,
    "gcp_project": _STRATEGY,
    "init_checkpoint": _FT_OTHER_FS,
    "iterations_per_loop": _FT_LOOP,
    "jit_compile": _FT_LOOP,
    "joint_prediction": _FT_HEAD,
    "joint_training": "test_multitask.py::test_per_task_training_is_the_switch",
    "tagging_reference": "test_tagging_reference.py::test_switch_reaches_features_labels_and_scores",
    "tagging_truncation_reference_bug": "test_tagging_reference.py::test_truncation_reference_bug",
    "keep_all_models": _FT_OTHER_FS,
    "keep_checkpoint_max": _FT_LOOP,
    "layerwise_lr_decay": _FT_LAYERWISE,
    "layerwise_lr_decay_reference_bug": _FT_LAYERWISE,
    "learning_rate": _FT_UPDATE,
    "log_every_steps": _FT_LOOP,
    "log_examples": _FT + "test_log_examples_logs_the_first_featurized_training_example",
    "max_answer_length": _FT_DECODE,
    "max_query_length": _FT_WINDOWS,
    "max_seq_length": _FT_WINDOWS,
    "mixed_precision": _STRATEGY,
    "model_dir": "test_multitask.py::test_per_task_training_is_the_switch",
    # A deeper encoder than the checkpoint's is refused, naming the missing layer.
    "model_hparam_overrides": "test_finetuning.py::test_restore_is_exact_and_errors_name_what_is_missing",
    # init_checkpoint <data_dir>/models/<model_name>
    "model_name": "test_faults.py::test_debug_finetuning_loads_the_debug_pretrained_checkpoint",
    "model_size": _FT_DEFAULTS,  # the size file's fine-tuning defaults (large: lr, decay)
    "n_best_size": _FT_DECODE,
    "n_writes_test": _FT_TRIALS,
    "num_tpu_cores": _FT_REFUSED,
    "num_train_epochs": _FT_STEPS,
    "num_trials": _FT_TRIALS,
    "predict_batch_size": _FT_BATCHES,
    "qa_eval_file": _FT_DECODE,
    "qa_na_file": _FT_DECODE,
    "qa_na_threshold": _FT_DECODE,
    "qa_preds_file": _FT_DECODE,
    "raw_data_dir": _FT_TRIALS,
    "results_json": _FT_TRIALS,
    "results_txt": _FT_TRIALS,
    "save_checkpoints_steps": _FT_LOOP,
    "seed": _FT + "test_seed_and_trial_set_the_initial_weights",
    "strategy": _STRATEGY,
    "task_names": "test_multitask.py::test_joint_training_learns_both_tasks_in_one_model",
    "task_specs": _FT_OTHER_FS,
    "test_predictions": _FT_TRIALS,
    "tpu_job_name": _FT_REFUSED,
    "tpu_name": _STRATEGY,
    "tpu_zone": _STRATEGY,
    "train_batch_size": _FT_STEPS,
    "use_tpu": _STRATEGY,
    "vocab_file": _FT_VOCAB,
    "vocab_size": _FT_SIZES,
    "warmup_proportion": _FT_UPDATE,
    "weight_decay_rate": _FT_UPDATE,
    "write_test_outputs": _FT_TRIALS,
}

CONFIGS = {
    "pretraining": (PRETRAINING, lambda: PretrainingConfig("m", "/unused")),
    "finetuning": (FINETUNING, lambda: FinetuningConfig("m", "/unused", task_names=["rte"])),
}


def _test_functions(file_name):
    """Names of the test functions defined at the top level of a test file."""
    with open(os.path.join(TESTS_DIR, file_name), encoding="utf-8") as f:
        tree = ast.parse(f.read(), file_name)
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    }


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_key_has_a_proof_and_every_entry_a_key(name):
    table, make_config = CONFIGS[name]
    keys = set(make_config().hparam_names())
    missing = sorted(keys - set(table))
    assert not missing, (
        f"{name} keys without a test that shows their effect: {missing}; write one and add it "
        "to the table in tests/test_switch_coverage.py"
    )
    stale = sorted(set(table) - keys)
    assert not stale, f"entries for keys {name} no longer has: {stale}; remove them"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_entry_names_an_existing_test(name):
    table = CONFIGS[name][0]
    functions = {}
    for key, entry in sorted(table.items()):
        file_name, sep, function = entry.partition("::")
        assert sep and file_name.startswith("test_") and file_name.endswith(".py"), (key, entry)
        assert os.path.exists(os.path.join(TESTS_DIR, file_name)), f"{key}: no tests/{file_name}"
        if file_name not in functions:
            functions[file_name] = _test_functions(file_name)
        assert function in functions[file_name], f"{key}: no {function} in tests/{file_name}"
