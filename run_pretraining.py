"""Pre-trains an ELECTRA (or masked-LM) model, as the reference's run_pretraining.py.

  python run_pretraining.py --data_dir=DATA --model_name=my-electra \
      --hparams='{"model_size": "small", "num_train_steps": 1000000}'

Data in DATA/pretrain_tfrecords, vocabulary DATA/vocab.txt, model and checkpoints in
DATA/models/<model_name>, results in DATA/models/<model_name>/results/unsup_results.txt (+ .json).
Re-running the same command continues from the last checkpoint. `--hparams` is a JSON dict or
the path of a JSON file; every key is a `configure_pretraining.PretrainingConfig` field.
"""

from absl import flags, logging

from electra_tf import flags_util
from electra_tf import hparams as hparams_lib
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import Pretrainer

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Location of data files (model weights, etc).")
flags.DEFINE_string("model_name", None, "The name of the model being pre-trained.")
flags.DEFINE_string("hparams", "{}", "JSON dict of model hyperparameters, or a JSON file path.")


def run_pretraining(config):
    """Trains and/or evaluates as the config says; returns the evaluation results (or None)."""
    logging.info("Config:\n%s", config.to_json())
    pretrainer = Pretrainer(config)
    if config.do_train:
        pretrainer.train()
    if config.do_eval:
        results = pretrainer.evaluate()
        pretrainer.write_results(results)
        return results
    return None


def main(argv):
    del argv
    for name in ("data_dir", "model_name"):
        if not FLAGS[name].value:
            raise flags.IllegalFlagValueError(f"--{name} is required")
    hparams = hparams_lib.load_hparams(FLAGS.hparams)
    hparams.pop("model_name", None)  # a saved pretrain_config.json names it; the flag decides
    config = PretrainingConfig(FLAGS.model_name, FLAGS.data_dir, **hparams)
    run_pretraining(config)


def run():
    flags_util.run_main(main)


if __name__ == "__main__":
    run()
