"""The base of this package's layers: constructor arguments are the layer's config."""

import keras

_NOT_CONFIG = ("self", "kwargs", "__class__")


class ConfigLayer(keras.layers.Layer):
    """A layer whose constructor arguments are its whole config.

    `self.remember(locals())`, first thing after `super().__init__(**kwargs)`, keeps every
    argument as an attribute and `get_config` returns them, so the config is complete by
    construction (a new argument cannot be forgotten in `get_config`).

    Example:

    >>> class Scale(ConfigLayer):
    ...     def __init__(self, factor=2.0, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.remember(locals())
    ...     def call(self, x):
    ...         return x * self.factor
    >>> Scale(3.0).get_config()["factor"]
    3.0
    """

    def remember(self, arguments):
        config = {k: v for k, v in arguments.items() if k not in _NOT_CONFIG}
        object.__setattr__(self, "_constructor_config", config)  # not tracked by Keras
        for key, value in config.items():
            setattr(self, key, value)

    def get_config(self):
        return {**super().get_config(), **self._constructor_config}
