"""phudge-lightning: fast LLM judges (PHUDGE) with Lightning."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import phudge_lightning` (and `phudge --help`) does not pay for torch and transformers.
    if name == "Judge":
        from phudge_lightning.judge import Judge

        return Judge
    if name == "JudgeModule":
        from phudge_lightning.model import JudgeModule

        return JudgeModule
    raise AttributeError(name)


__all__ = ["Judge", "JudgeModule", "__version__"]
