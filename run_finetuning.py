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

from electra_tf import cli
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.runner import run_finetuning

COMMAND = cli.job_command("fine-tuned", FinetuningConfig, run_finetuning)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
