"""The package's layering: imports point down only (see ARCHITECTURE.md).

tokenization <- data <- modeling <- training <- (pretraining, finetuning) <- conversion <- demo,
with the small shared modules (fileio, hparams, cli) at the bottom. Pre-training and fine-tuning
are siblings and import neither each other.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "electra_tf"

# Each module or sub-package's layer; a module may import only from layers below its own, and
# from its own sub-package.
LAYERS = {
    "fileio": 0,
    "hparams": 1,
    "cli": 2,
    "tokenization": 1,
    "data": 3,
    "vocab": 3,
    "modeling": 4,
    "training": 5,
    "pretraining": 6,
    "finetuning": 6,
    "conversion": 7,
    "plots": 8,
    "demo": 9,
}


def _unit(module):
    """`electra_tf.x.y` -> "x" (the sub-package or top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "electra_tf" else None


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "electra_tf":  # from electra_tf import x
                for alias in node.names:
                    yield node.lineno, f"electra_tf.{alias.name}"
            else:
                yield node.lineno, node.module


def upward_imports():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = _unit(".".join(relative.parts))
        if unit is None or unit == "__init__":
            continue
        for line, module in _imports(path):
            target = _unit(module)
            if target is None or target == unit:
                continue
            if target not in LAYERS:
                found.append(f"{relative}:{line} imports unknown unit {module}")
            elif LAYERS[target] >= LAYERS[unit]:
                found.append(
                    f"{relative}:{line} imports {module} (layer {target} is not below {unit})"
                )
    return found


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    units = {u for u in units if not u.startswith("__") and u != "resources"}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_point_down():
    assert upward_imports() == []


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """A wrong import (training -> pretraining, as once in loop.py) is reported."""
    fake = tmp_path / "electra_tf"
    (fake / "training").mkdir(parents=True)
    (fake / "pretraining").mkdir()
    (fake / "training" / "loop.py").write_text("from electra_tf.pretraining import masking\n")
    (fake / "pretraining" / "masking.py").write_text("from electra_tf.training import seeds\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == [
        "electra_tf/training/loop:1 imports electra_tf.pretraining (layer pretraining is not below "
        "training)"
    ]
