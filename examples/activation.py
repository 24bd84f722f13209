"""A GELU written out by hand (the tanh approximation), as it appears in many model codebases."""

import math

import torch


def gelu_tanh(x):
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
    return 0.5 * x * (1.0 + torch.tanh(inner))
