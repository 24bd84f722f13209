"""Guard-banded tensors: every tensor lives inside a larger buffer whose margins hold sentinel bit patterns.

Used inside the worker only. Outputs the candidate allocates (through the patched `torch.empty` family) have
their own elements poisoned (a NaN with a payload for floats, a sentinel for ints and bools) so an element the
kernel never writes is recognisable, and guard bands that an out-of-bounds store would change. Inputs get NaN
guard bands, so an unmasked out-of-bounds load tends to poison the result, and are compared bit for bit after
the run ("input modified").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

GUARD = 4096  # elements on each side of every guarded tensor

_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16, torch.bool: torch.uint8}

# (poison, output guard, input guard) bit patterns, as integers of the same width.
_PATTERNS = {
    torch.float64: (0x7FF4A5A5A5A5A5A5, 0x7FF3DEADDEADDEAD, 0x7FF8BEEFBEEFBEEF),
    torch.float32: (0x7FA5A5A5, 0x7F9DDEAD, 0x7FC0BEEF),
    torch.float16: (0x7D5A, 0x7D3D, 0x7E5B),
    torch.bfloat16: (0x7FA5, 0x7F9D, 0x7FCB),
    torch.bool: (0x5A, 0xA5, 0x01),
}


def _patterns(dtype: torch.dtype) -> tuple[int, int, int]:
    if dtype in _PATTERNS:
        return _PATTERNS[dtype]
    info = torch.iinfo(dtype)
    if info.min == 0:  # unsigned
        return (0xA5 % (info.max + 1), info.max - 0x21, info.max - 0x11)
    return (info.min + 0x25, info.max - 0x37, info.max - 0x11)


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's elements reinterpreted as integers of the same width (bitwise comparisons, NaN included)."""
    ity = _BITS.get(t.dtype)
    return t if ity is None else t.view(ity)


def _fill_bits(t: torch.Tensor, pattern: int) -> None:
    if t.numel():
        bits(t).fill_(pattern)


def span(size: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """Elements of storage a strided view touches (from its first element)."""
    if any(n == 0 for n in size):
        return 0
    return 1 + sum((n - 1) * abs(s) for n, s in zip(size, stride, strict=False))


@dataclass
class Guarded:
    view: torch.Tensor
    buffer: torch.Tensor  # 1-D, GUARD + span + GUARD elements
    span: int
    role: str  # "output" | "input"
    snapshot: torch.Tensor | None = None  # for inputs: a copy of the whole buffer

    def guards_intact(self) -> bool:
        guard_bits = _patterns(self.buffer.dtype)[1 if self.role == "output" else 2]
        lo, hi = bits(self.buffer[:GUARD]), bits(self.buffer[GUARD + self.span:])
        return bool((lo == guard_bits).all()) and bool((hi == guard_bits).all())

    def unchanged(self) -> bool:
        assert self.snapshot is not None
        return torch.equal(bits(self.buffer), bits(self.snapshot))

    def poisoned_count(self, t: torch.Tensor) -> int:
        """How many elements of `t` (a view of this buffer) still hold the poison pattern."""
        return int((bits(t) == _patterns(t.dtype)[0]).sum())


def _alloc(empty, size, stride, dtype, device, role: str) -> Guarded:
    n = span(tuple(size), tuple(stride))
    buf = empty(n + 2 * GUARD, dtype=dtype, device=device)
    poison, out_guard, in_guard = _patterns(dtype)
    _fill_bits(buf, out_guard if role == "output" else in_guard)
    _fill_bits(buf[GUARD:GUARD + n], poison)
    view = buf.as_strided(tuple(size), tuple(stride), GUARD)
    return Guarded(view, buf, n, role)


def guarded_input(value: torch.Tensor, layout: str, device) -> Guarded:
    """Place `value` (any device) inside a guarded buffer on `device`, laid out as asked."""
    size = tuple(value.shape)
    rank = len(size)
    if layout == "strided" and rank >= 1:
        # Every other element of the last dim of a twice-as-wide buffer.
        base_stride = _contiguous_strides((*size[:-1], 2 * size[-1]))
        stride = (*base_stride[:-1], 2)
    elif layout == "transposed" and rank >= 2:
        # A contiguous tensor of the last two dims swapped, transposed back.
        swapped = (*size[:-2], size[-1], size[-2])
        st = _contiguous_strides(swapped)
        stride = (*st[:-2], st[-1], st[-2])
    else:
        stride = _contiguous_strides(size)
    g = _alloc(torch.empty, size, stride, value.dtype, device, "input")
    n = g.span
    if n:
        # Gaps between strided elements hold the input-guard NaN too.
        _fill_bits(g.buffer[GUARD:GUARD + n], _patterns(value.dtype)[2])
    g.view.copy_(value)
    g.snapshot = g.buffer.clone()
    return g


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(size):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


class AllocationGuard:
    """Patches torch's allocation functions so every tensor allocated inside `active()` is guarded and poisoned."""

    EMPTY = ("empty", "empty_like", "empty_strided")
    FILLED = {"zeros": 0, "zeros_like": 0, "ones": 1, "ones_like": 1}
    FULL = ("full", "full_like")

    def __init__(self) -> None:
        self.allocations: list[Guarded] = []
        self._busy = False
        self._originals = {name: getattr(torch, name) for name in (*self.EMPTY, *self.FILLED, *self.FULL)}

    def _wrap(self, name: str):
        orig = self._originals[name]
        empty = self._originals["empty"]
        like_fn = name.endswith("_like")

        def wrapper(*args, **kwargs):
            if kwargs.get("out") is not None or self._busy:
                return orig(*args, **kwargs)
            self._busy = True  # torch's Python meta functions may call torch.empty themselves
            try:
                meta = orig(*args, **{**kwargs, "device": "meta"})
            except Exception:
                return orig(*args, **kwargs)
            finally:
                self._busy = False
            dev = kwargs.get("device")
            if dev is not None:
                device = torch.device(dev)
            elif like_fn and isinstance(args[0] if args else kwargs.get("input"), torch.Tensor):
                device = (args[0] if args else kwargs["input"]).device
            else:
                device = torch.get_default_device()
            g = _alloc(empty, meta.shape, meta.stride(), meta.dtype, device, "output")
            self.allocations.append(g)
            if name in self.FILLED:
                g.view.fill_(self.FILLED[name])
            elif name in self.FULL:
                value = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
                g.view.fill_(value)
            return g.view

        wrapper.__name__ = name
        wrapper.__wrapped__ = orig
        return wrapper

    @contextlib.contextmanager
    def active(self):
        self.allocations = []
        for name in self._originals:
            setattr(torch, name, self._wrap(name))
        try:
            yield self
        finally:
            for name, orig in self._originals.items():
                setattr(torch, name, orig)

    def owner(self, t: torch.Tensor) -> Guarded | None:
        """The guarded allocation whose storage `t` shares, if any."""
        ptr = t.untyped_storage().data_ptr()
        for g in self.allocations:
            if g.buffer.untyped_storage().data_ptr() == ptr:
                return g
        return None
