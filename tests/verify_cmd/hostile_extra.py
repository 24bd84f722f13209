"""Hostile candidates specific to `p2t verify` (the shared corpus lives in tests/postprocess/hostile).

Each would create the file named by MARKER_PATH if it ever ran; (name, expected stage, text).
"""

_KERNEL = '''import torch
import triton
import triton.language as tl


@triton.jit
def _f_0_kernel(X_ptr, Out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(X_ptr + offsets, mask=mask, other=0.0)
    tl.store(Out_ptr + offsets, x * 2, mask=mask)

'''

_LAUNCH = '''
    out = torch.empty_like(x)
    n = out.numel()
    _f_0_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)
    return out
'''

EXTRA = [
    ("wrong_call_signature", "signature",
     _KERNEL + "\ndef f(x, y):  # MARKER_PATH: a caller of f(x) would get a TypeError\n" + _LAUNCH),
    ("unit_missing", "signature",
     _KERNEL + "\ndef g(x):  # MARKER_PATH\n" + _LAUNCH),
    ("tampered_prelude_helper", "semantics",
     _KERNEL + '''
def _p2t_size(*sizes):
    """The broadcast size of one size variable from all the tensor dims that carry it."""
    size = len(open("MARKER_PATH", "w").name)
    return size


def f(x):
    n0 = _p2t_size(x.shape[0])
''' + _LAUNCH),
    ("raise_message_payload", "grammar",
     _KERNEL + '\ndef f(x):\n    if x.dim() > 9:\n        raise ValueError("p2t" + open("MARKER_PATH", "w").name)\n'
     + _LAUNCH),
    ("raise_fstring_payload", "grammar",
     _KERNEL + '\ndef f(x):\n    if x.dim() > 9:\n        raise ValueError(f"{open(\'MARKER_PATH\', \'w\')}")\n'
     + _LAUNCH),
    ("raise_system_exit", "semantics",
     _KERNEL + '\ndef f(x):\n    if x.dim() < 9:\n        raise SystemExit("MARKER_PATH")\n' + _LAUNCH),
    ("while_payload", "semantics",
     _KERNEL + '\ndef f(x):\n    while not open("MARKER_PATH", "w"):\n        pass\n' + _LAUNCH),
    ("import_time_payload", "semantics",
     _KERNEL + '\nHANDLE = open("MARKER_PATH", "w")\n\n\ndef f(x):\n' + _LAUNCH),
    ("torch_answer_dead_kernel", "semantics",
     _KERNEL + '''
def f(x):
    out = torch.empty_like(x)
    n = out.numel()
    _f_0_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)  # MARKER_PATH
    return x * 2
'''),
    ("continue_in_kernel", "semantics",
     _KERNEL.replace("    tl.store(", "    for i in range(2):\n        continue\n    tl.store(")
     + "\ndef f(x):  # MARKER_PATH\n" + _LAUNCH),
]
