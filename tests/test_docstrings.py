"""Every runnable example in the package's docstrings runs and prints what it says (the layers'
`Example:` sections are documentation a reader copies, so they must stay true)."""

import doctest
import importlib
import pkgutil

import pytest

import electra_tf

MODULES = sorted(info.name for info in pkgutil.walk_packages(electra_tf.__path__, "electra_tf."))
# Modules whose layers document themselves with an example; one that loses them fails here.
DOCUMENTED = (
    "electra_tf.modeling.dropout",
    "electra_tf.modeling.embeddings",
    "electra_tf.modeling.encoder",
    "electra_tf.modeling.heads",
    "electra_tf.modeling.mobilebert",
    "electra_tf.modeling.transformer",
    "electra_tf.modeling.task_heads",
    "electra_tf.pretraining.model",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see above)"
    if name in DOCUMENTED:
        assert result.attempted > 0, f"{name} lost its docstring examples"
