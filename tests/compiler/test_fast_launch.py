"""The prelude's cached launcher (`_p2t_fast_launch`, issue 3): after Triton's first launch of a specialization,
`kernel[grid](...)` goes straight to the compiled kernel's launcher, and only when Triton would have launched
that same compiled kernel.

No GPU here: Triton's own `JITFunction.run` is replaced by a recorder that hands back a fake compiled kernel, and
the active driver by one that names a device and a stream. What is checked is the cache: which launches reach
Triton, which go to the compiled launcher, and with which arguments in which order.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl
from triton.runtime import driver
from triton.runtime.interpreter import InterpretedFunction

from p2t_core.codegen.prelude import PRELUDE


def _scale_kernel(X_ptr, Out_ptr, n, scale, BLOCK: tl.constexpr, EVEN: tl.constexpr = True):
    pass


class FakeCompiled:
    def __init__(self, serial):
        self.serial, self.function, self.packed_metadata, self.launches = serial, f"fn{serial}", ("meta",), []

    def run(self, *args):
        self.launches.append(args)


class FakeDriver:
    def get_current_device(self):
        return 0

    def get_current_stream(self, device):
        return 1234


@pytest.fixture
def launcher(monkeypatch):
    """(kernel, calls into Triton): a real JITFunction decorated by the prelude's helper."""
    triton_calls = []

    def triton_run(self, *args, grid, warmup, **meta):
        triton_calls.append((args, grid, warmup, meta))
        return FakeCompiled(len(triton_calls))

    monkeypatch.setattr(triton.runtime.JITFunction, "run", triton_run)
    monkeypatch.setattr(driver, "_active", FakeDriver())  # restored after the test (None: created when needed)
    namespace = {"torch": torch, "triton": triton}
    exec(PRELUDE["_p2t_fast_launch"], namespace)
    kernel = namespace["_p2t_fast_launch"](triton.runtime.JITFunction(_scale_kernel))
    return kernel, triton_calls


def test_the_second_launch_goes_to_the_compiled_kernel_with_every_parameter_in_order(launcher):
    kernel, triton_calls = launcher
    x, out = torch.randn(64), torch.empty(64)
    first = kernel[(4,)](x, out, 64, 0.5, BLOCK=16, num_warps=4)
    assert len(triton_calls) == 1 and triton_calls[0][1:] == ((4,), False, {"BLOCK": 16, "num_warps": 4})
    second = kernel[(4, 2)](x, out, 64, 0.25, BLOCK=16, num_warps=4)
    assert second is first and len(triton_calls) == 1
    (launch,) = first.launches
    # grid padded to 3 dims, the stream, the kernel, its metadata, no launch hooks; the constexprs last, the
    # default of one that was not passed included
    assert launch == (4, 2, 1, 1234, "fn1", ("meta",), None, None, None, x, out, 64, 0.25, 16, True)


@pytest.mark.parametrize("change", ["dtype", "misaligned", "int_to_one", "int_off_16", "int_64_bit",
                                    "constexpr", "num_warps"])
def test_a_launch_triton_would_specialize_differently_goes_back_to_triton(launcher, change):
    kernel, triton_calls = launcher
    x, out = torch.randn(65), torch.empty(65)
    args, meta = [x[:64], out[:64], 64, 0.5], {"BLOCK": 16, "num_warps": 4}
    kernel[(4,)](*args, **meta)
    changed = {"dtype": lambda: args.__setitem__(0, x[:64].half()),
               "misaligned": lambda: args.__setitem__(0, x[1:]),  # 4 bytes past a 16-byte boundary
               "int_to_one": lambda: args.__setitem__(2, 1),
               "int_off_16": lambda: args.__setitem__(2, 63),
               "int_64_bit": lambda: args.__setitem__(2, 2**31 + 16),
               "constexpr": lambda: meta.__setitem__("BLOCK", 32),
               "num_warps": lambda: meta.__setitem__("num_warps", 8)}
    changed[change]()
    kernel[(4,)](*args, **meta)
    assert len(triton_calls) == 2
    kernel[(4,)](*args, **meta)  # and that specialization is cached in turn
    assert len(triton_calls) == 2


def test_values_triton_does_not_specialize_on_share_the_compiled_kernel(launcher):
    kernel, triton_calls = launcher
    x, out = torch.randn(64), torch.empty(64)
    kernel[(1,)](x, out, 32, 0.5, BLOCK=16)
    kernel[(1,)](torch.randn(64), torch.empty(64), 48, -3.0, BLOCK=16)  # other aligned tensors, ints, floats
    assert len(triton_calls) == 1


def test_a_bool_and_an_int_equal_to_it_do_not_share_a_kernel(launcher):
    """Triton gives True an i1 and 1 a constexpr: two kernels, though True == 1 in Python."""
    kernel, triton_calls = launcher
    x, out = torch.randn(64), torch.empty(64)
    for n in (1, True, 1, True, 0, False):
        kernel[(1,)](x, out, n, 0.5, BLOCK=16)
    assert len(triton_calls) == 4


def test_the_cost_script_runs():
    script = Path(__file__).resolve().parents[2] / "scripts" / "fast_launch_cost.py"
    proc = subprocess.run([sys.executable, str(script), "--launches", "50", "--rounds", "1"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "cached launch, Python only" in proc.stdout, proc.stderr[-2000:]


def test_warmup_callable_grids_and_launch_hooks_keep_triton_s_path(launcher):
    kernel, triton_calls = launcher
    x, out = torch.randn(64), torch.empty(64)
    kernel[(1,)](x, out, 32, 0.5, BLOCK=16)
    kernel.warmup(x, out, 32, 0.5, BLOCK=16, grid=(1,))
    kernel[lambda meta: (1,)](x, out, 32, 0.5, BLOCK=16)
    hook = lambda metadata: None  # noqa: E731
    triton.knobs.runtime.launch_enter_hook.add(hook)
    try:
        kernel[(1,)](x, out, 32, 0.5, BLOCK=16)
    finally:
        triton.knobs.runtime.launch_enter_hook.remove(hook)
    assert [call[2] for call in triton_calls] == [False, True, False, False]


def test_interpreted_kernels_are_left_as_they_are():
    namespace = {"torch": torch, "triton": triton}
    exec(PRELUDE["_p2t_fast_launch"], namespace)
    interpreted = InterpretedFunction(_scale_kernel)
    assert namespace["_p2t_fast_launch"](interpreted) is interpreted
    assert "run" not in vars(interpreted)
