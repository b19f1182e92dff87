"""charchat: train a character-level GPT-2 on your own text, and chat with it.

The core (this package minus charchat.tui) imports no Textual. Names are loaded lazily, so
`import charchat` is instant and torch is imported only when a model is needed:

    import charchat
    result = charchat.train(["my.txt"], name="mine", minutes=2)
    m = charchat.load_model("mine")
    print(charchat.sample(m, "Once upon a time", chars=200))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GPT": "model", "GPTConfig": "config", "KVCache": "decoding",
    "CharTokenizer": "tokenizer",
    "load_corpus": "corpus", "corpus_from_text": "corpus", "inspect": "corpus",
    "Corpus": "corpus", "CorpusError": "config", "CorpusSummary": "config",
    "TrainConfig": "config", "Trainer": "trainer", "TrainEvent": "config",
    "TrainResult": "config", "TrainingError": "config", "ConfigError": "config",
    "train": "runs:train_files", "RunRequest": "runs", "plan": "runs",
    "SamplingSettings": "config", "stream_text": "generation", "sample_next": "generation",
    "load_model": "store", "list_models": "store", "StoreError": "store", "LoadedModel": "store",
    "ChatSession": "chat", "sample": "chat",
    "val_loss": "evaluate",
    "pick_device": "device",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'charchat' has no attribute {name!r}")
    module, _, attr = module.partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
