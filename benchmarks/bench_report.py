"""Where every benchmark's numbers go besides stdout: `--json PATH` (BENCHMARKS.md is written from it)."""

import argparse
import json
import os

# The project's shared data folder, next to the repository.
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")


def shared_data_parser(doc):
    """The flags of a benchmark on the shared data: `--shared` (that folder) and `--json`; the
    description is the first line of `doc` (the script's docstring)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--shared", default=SHARED)
    parser.add_argument("--json", default=None, help="also write the figures here")
    return parser


def write_json(path, results):
    """Writes `results` as indented JSON to `path` (nothing when `path` is empty)."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
