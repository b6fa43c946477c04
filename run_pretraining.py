"""Pre-trains an ELECTRA (or masked-LM) model, as the reference's run_pretraining.py.

  python run_pretraining.py --data_dir=DATA --model_name=my-electra \
      --hparams='{"model_size": "small", "num_train_steps": 1000000}'

Data in DATA/pretrain_tfrecords, vocabulary DATA/vocab.txt, model and checkpoints in
DATA/models/<model_name>, results in DATA/models/<model_name>/results/unsup_results.txt (+ .json).
Re-running the same command continues from the last checkpoint. `--hparams` is a JSON dict or
the path of a JSON file (a saved pretrain_config.json too); every key is a
`configure_pretraining.PretrainingConfig` field.
"""

from electra_tf import cli
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import run_pretraining

COMMAND = cli.job_command("pre-trained", PretrainingConfig, run_pretraining)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
