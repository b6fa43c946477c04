"""Transformer encoder hyper-parameters, named as in BERT's `bert_config.json`."""

import dataclasses
import difflib
import inspect
from typing import Any

from electra_tf import fileio


class DictConfig:
    """Dict and JSON forms of this package's dataclass configs (`EncoderConfig`,
    `MobileBertConfig`): an unknown key raises and names the closest valid one."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        names = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"Unknown {cls.__name__} key {key!r}.{hint} Valid keys: {', '.join(names)}."
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_file(cls, path: str):
        """The config in a JSON file (any gfile path); errors name the file."""
        try:
            return cls.from_dict(fileio.read_json(path))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    def to_json_file(self, path: str) -> None:
        fileio.write_json_atomic(path, self.to_dict(), sort_keys=True)


# Layer arguments named other than the config key they are read from (`BertConfig.layer_kwargs`).
LAYER_ARGUMENTS = {
    "num_heads": "num_attention_heads",
    "activation": "hidden_act",
    "dropout_rate": "hidden_dropout_prob",
    "attention_dropout_rate": "attention_probs_dropout_prob",
}


@dataclasses.dataclass
class BertConfig(DictConfig):
    """The keys of BERT's `bert_config.json` (and Hugging Face's `BertConfig`) with BERT-Base's
    defaults: what every encoder config here (`EncoderConfig`, `MobileBertConfig`) has."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def layer_kwargs(self, layer_class):
        """The arguments of `layer_class` that this config sets: each argument named as a config
        key, or as its translation in `LAYER_ARGUMENTS` (`activation` <- `hidden_act`, ...), so
        the BERT-key -> layer-argument renaming has this one owner."""
        parameters = inspect.signature(layer_class.__init__).parameters
        return {
            name: getattr(self, LAYER_ARGUMENTS.get(name, name))
            for name in parameters
            if hasattr(self, LAYER_ARGUMENTS.get(name, name))
        }

    def bert_values(self):
        """{key: value} of the `bert_config.json` keys alone (what a plain BERT of the same shape
        needs, whatever this config adds)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(BertConfig)}


@dataclasses.dataclass
class EncoderConfig(BertConfig):
    """Hyper-parameters of a BERT/ELECTRA transformer encoder.

    Field names match `bert_config.json` (and Hugging Face's `ElectraConfig`),
    so Google's and Hugging Face's config files load without renaming.
    `embedding_size=None` means "same as `hidden_size`" and is resolved on
    construction, so `dataclasses.replace(config, hidden_size=...)` keeps the
    embedding width, which is what ELECTRA's generator needs (it shares the
    discriminator's embeddings).
    """

    embedding_size: int | None = None

    def __post_init__(self):
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
