"""Shared fixtures: the ../shared data folder (skip with a reason when absent), TF log noise."""

import os
import uuid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ELECTRA_TF_SHARED", os.path.join(REPO_ROOT, "..", "shared"))


def shared_path(*parts):
    """Path inside ../shared, or skip the calling test when the folder is not there."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path} (the project's ../shared data folder), which is absent")
    return path


@pytest.fixture
def ram_dir():
    """A fresh in-memory directory standing in for a gs:// bucket."""
    return f"ram://test-{uuid.uuid4().hex}"
