"""Fine-tunes and evaluates ELECTRA on downstream tasks, as the reference's run_finetuning.py.

  python run_finetuning.py --data_dir=DATA --model_name=my-electra \
      --hparams='{"task_names": ["rte"], "model_size": "base"}'

Pre-trained weights from DATA/models/<model_name> (a run_pretraining.py checkpoint, no
conversion; or `init_checkpoint`), task data in DATA/finetuning_data/<task>/, results in
DATA/models/<model_name>/results/<tasks>_results.txt (+ .json), fine-tuned models in
DATA/models/<model_name>/finetuning_models/. `--hparams` is a JSON dict or the path of a JSON
file; every key is a `configure_finetuning.FinetuningConfig` field. Dashed flag spellings
(`--data-dir`) work too.
"""

from absl import flags

from electra_tf import flags_util
from electra_tf import hparams as hparams_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.runner import run_finetuning

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Location of data files (model weights, etc).")
flags.DEFINE_string("model_name", None, "The name of the model being fine-tuned.")
flags.DEFINE_string("hparams", "{}", "JSON dict of model hyperparameters, or a JSON file path.")


def main(argv):
    del argv
    for name in ("data_dir", "model_name"):
        if not FLAGS[name].value:
            raise flags.IllegalFlagValueError(f"--{name} is required")
    config = FinetuningConfig(
        FLAGS.model_name, FLAGS.data_dir, **hparams_lib.load_hparams(FLAGS.hparams)
    )
    run_finetuning(config)


def run():
    flags_util.run_main(main)


if __name__ == "__main__":
    run()
