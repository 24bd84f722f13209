"""The LLM engine (DESIGN.md, "The LLM engine"): prompt, decoding, the post-processor chain, `p2t eval`.

    LLMEngine(weights_dir=None, device=None).translate_unit(source, path, unit, k=4, ...) -> LLMResult
    translate_with_llm(source, path, unit=None, engine="llm"|"auto", ...) -> MixedTranslation
    p2t_core.llm.cli: the click commands `eval` (and the helpers `p2t translate --engine llm|auto` uses)

Modules import torch lazily: `import p2t_core.llm` stays light.
"""

from __future__ import annotations

__all__ = ["LLMEngine", "LLMResult", "LLMTranslationError", "LLMUnavailable", "translate_with_llm"]


def __getattr__(name):
    if name in ("LLMEngine", "LLMResult", "LLMTranslationError", "LLMUnavailable"):
        from p2t_core.llm import engine

        return getattr(engine, name)
    if name == "translate_with_llm":
        from p2t_core.llm.auto import translate_with_llm

        return translate_with_llm
    raise AttributeError(name)
