"""Where every benchmark's numbers go besides stdout: `--json PATH` (BENCHMARKS.md is written from it)."""

import json


def write_json(path, results):
    """Writes `results` as indented JSON to `path` (nothing when `path` is empty)."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
