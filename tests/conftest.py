"""Test-wide settings: GPU tests skip cleanly without CUDA; installed third-party plugins never leak in; the
LLM engine has no default weights (P2T_WEIGHTS is an empty directory, for this process and the CLI subprocesses),
so `--engine auto` on a refused unit answers at once instead of decoding with the shipped 50M model on the CPU.
tests/llm/test_shipped_weights.py uses the shipped weights explicitly."""

import os
import tempfile

import pytest
import torch

_NO_WEIGHTS = tempfile.TemporaryDirectory(prefix="p2t-no-weights-")  # removed when this test process exits
os.environ["P2T_WEIGHTS"] = _NO_WEIGHTS.name


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
