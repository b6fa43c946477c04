"""Distills a MobileBERT student from a teacher, as the original MobileBERT run_pretraining.py.

  python run_distillation.py --data_dir=DATA --model_name=my-mobilebert \
      --hparams='{"teacher": "roberta_wwm_ext/", "model_size": "mobilebert_base_f2",
                  "layer_wise_warmup": true, "num_distill_steps": 500000, ...}'

Same conventions as run_pretraining.py: data in DATA/pretrain_tfrecords, vocabulary DATA/vocab.txt,
the student in DATA/models/<model_name> (stage 1 in its warmup/ folder), results in
DATA/models/<model_name>/results/unsup_results.txt (+ .json). Re-running continues from the last
checkpoint. `--hparams` keys are the original's flag names plus `teacher` (an original checkpoint
folder with bert_config.json, a run_pretraining.py model dir, or a Hugging Face BERT/MobileBERT/
ELECTRA folder) and `model_size` (a model_sizes/mobilebert_*.json name or a path); see
`electra_tf.pretraining.distiller.DistillationHParams`.
"""

import functools

from electra_tf import cli
from electra_tf.conversion.teacher import load_teacher
from electra_tf.pretraining.distiller import DistillationHParams, run_distillation

COMMAND = cli.job_command(
    "distilled", DistillationHParams, functools.partial(run_distillation, load_teacher=load_teacher)
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
