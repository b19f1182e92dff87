"""The package's layers: imports point one way, down.

    leaves      standard library only: settings, formats, locks, the schedule's arithmetic
    core        torch and numpy: the model, sampling, optimizers, evaluation
    services    the store, corpora, checkpoints, the trainer, preferences, conversations
    use cases   what both front ends call (charchat.runs, charchat.modelops)
    front ends  the command line and the app

Read from the source (every import, at module level or inside a function; an import under
`if TYPE_CHECKING:` runs only for type checkers and is left out), so a new module must be given
its layer here, and an import that points up, or closes a circle, fails the test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "charchat"

LAYERS = {
    0: {"config", "formatting", "locking", "schedule", "allocator", "tokenizer"},
    1: {"model", "generation", "decoding", "optimizer", "adamw", "muon", "optimizers", "device",
        "batches", "evaluate", "bpe", "tokenizers", "hellaswag", "distributed"},
    2: {"store", "corpus", "idcache", "gpt2import", "download", "checkpoint", "rundir", "recipe", "preferences", "conversations",
        "catalog", "chat", "trainer"},
    3: {"runs", "modelops", "launch"},
    4: {"cli", "__main__", "tui"},
}
EXTERNAL = {"torch", "numpy", "textual", "rich", "platformdirs", "textual_plot", "tiktoken",
            "rustbpe"}


def module_files() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = module_files()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def imports_of(name: str, top_level_only: bool = False) -> set[str]:
    """The charchat modules and external packages a module imports."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t in MODULES and t != "charchat":
                found.add(t)
            elif t.split(".")[0] in EXTERNAL:
                found.add(t.split(".")[0])
    return found


def layer_of(name: str) -> int:
    short = name.removeprefix("charchat.").split(".")[0]
    for rank, names in LAYERS.items():
        if short in names:
            return rank
    raise AssertionError(f"{name} has no layer: add it to LAYERS in tests/test_layers.py")


def test_every_module_has_a_layer_and_imports_only_downwards():
    problems = []
    for name in MODULES:
        if name == "charchat":
            continue  # the package's lazy exports
        rank = layer_of(name)
        for target in imports_of(name):
            if target in EXTERNAL:
                if rank == 0:
                    problems.append(f"{name} (a leaf) imports {target}")
                continue
            if target != "charchat" and layer_of(target) > rank:
                problems.append(f"{name} (layer {rank}) imports {target} "
                                f"(layer {layer_of(target)})")
    assert not problems, "\n".join(problems)


def test_the_core_never_imports_a_front_end():
    for name in MODULES:
        if name != "charchat" and layer_of(name) < 4:
            bad = {t for t in imports_of(name) if t.startswith(("charchat.cli", "charchat.tui"))}
            assert not bad, f"{name} imports {bad}"
    for name in MODULES:
        if name.startswith("charchat.tui"):
            assert "charchat.cli" not in imports_of(name), name


def test_there_are_no_import_cycles():
    graph = {name: {t for t in imports_of(name) if t in MODULES and t != "charchat"}
             for name in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_no_app_module_imports_torch_when_imported():
    """The app paints before torch loads: no module of charchat.tui imports it at import time,
    directly or through what it imports at import time."""
    def closure(name: str, seen: set[str]) -> set[str]:
        for t in imports_of(name, top_level_only=True):
            if t not in seen:
                seen.add(t)
                if t in MODULES:
                    closure(t, seen)
        return seen

    for name in MODULES:
        if name.startswith("charchat.tui"):
            reached = closure(name, set())
            assert "torch" not in reached, f"{name} imports torch at import time"


@pytest.mark.parametrize("module", ["charchat.tui.app", "charchat.tui.screens.train",
                                    "charchat.tui.screens.models", "charchat.runs",
                                    "charchat.config", "charchat.cli"])
def test_importing_it_loads_no_torch(module):
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_planted_upward_import_is_caught(tmp_path, monkeypatch):
    """The checks can fail: a leaf that imports the store, and a circle, are reported."""
    leaf = tmp_path / "charchat" / "config.py"
    leaf.parent.mkdir()
    leaf.write_text("from . import store\n")
    store = tmp_path / "charchat" / "store.py"
    store.write_text("from .config import x\n")
    monkeypatch.setattr(sys.modules[__name__], "MODULES",
                        {"charchat.config": leaf, "charchat.store": store})
    with pytest.raises(AssertionError, match="layer 0.*imports charchat.store"):
        test_every_module_has_a_layer_and_imports_only_downwards()
    with pytest.raises(AssertionError, match="import cycle"):
        test_there_are_no_import_cycles()
