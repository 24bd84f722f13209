"""Attention-style row softmax: scale, additive mask, softmax over the last dim."""

import torch


def scaled_masked_softmax(scores, mask, scale: float = 0.125):
    return torch.softmax(scores * scale + mask, dim=-1)
