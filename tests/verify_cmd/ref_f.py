"""Reference for the verify-command tests: the unit every hostile candidate pretends to implement."""

import torch  # noqa: F401  (a reference file as users write them)


def f(x):
    return x * 2
