"""Fake compiler and verifier for the data-pipeline tests (module-level, so spawned workers can import them)."""

from __future__ import annotations

from types import SimpleNamespace

CALLS = {"compile": 0, "verify": 0}
INTERRUPT_AFTER: list[int] = []  # when set: raise KeyboardInterrupt at this verify call
UNSUPPORTED_OPS = {"mish"}  # the fake compiler refuses units with these ops


def reset(interrupt_after: int | None = None) -> None:
    CALLS["compile"] = CALLS["verify"] = 0
    INTERRUPT_AFTER[:] = [interrupt_after] if interrupt_after is not None else []


def fake_compile(source: str, unit: str):
    from p2t_core.errors import UnsupportedError

    CALLS["compile"] += 1
    if any(f"{op}(" in source for op in UNSUPPORTED_OPS):
        raise UnsupportedError("call to mish", "anything else", line=3, col=5)
    body = "\n".join("    " + line for line in source.splitlines())
    return SimpleNamespace(module_source=f"import triton\n# kernel for {unit}\n{body}\n", signature=None,
                           n_kernels=1)


def fake_verify(reference_source, candidate_source, signature, **kw):
    CALLS["verify"] += 1
    if INTERRUPT_AFTER and CALLS["verify"] > INTERRUPT_AFTER[0]:
        raise KeyboardInterrupt
    assert kw["dtypes"] == ("float32",)
    assert all(isinstance(v, int) and v > 0 for s in kw["shapes"] for v in s.values())
    if "torch.floor(" in reference_source and "sign" in reference_source:  # a deterministic "failure"
        return SimpleNamespace(passed=False, error=None, cases=[SimpleNamespace(status="fail", message="mismatch")])
    return SimpleNamespace(passed=True, error=None, cases=[])
