"""The folders of scratchformer/ are its layers, and imports only go down.

    tokenizers/, device            (the base: import only the base)
    model/                         imports only model/
    checkpoint, gpt2, snapshots    model/, the base (gpt2: reading GPT-2's own folders; snapshots: a
                                   training's snapshots beside its checkpoint)
    inference/                     model/, the base
    training/                      inference/, checkpoint, model/, the base
    views/                         views/ and the base: figures are drawn from numbers and token labels,
                                   no model code
    app/                           everything (training/: the Train live tab runs training.live)
    train.py, evaluate.py          the command lines: training/ only

Also: no import circle between modules, and no ``_private`` name imported from another module.
Imports are read from each module's syntax tree, those inside functions included.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scratchformer"

ALLOWED = {
    "base": {"base"},
    "model": {"model"},
    "checkpoint": {"checkpoint", "model", "base"},
    "inference": {"inference", "model", "base"},
    "training": {"training", "inference", "checkpoint", "model", "base"},
    "views": {"views", "base"},
    "app": {"app", "views", "inference", "training", "checkpoint", "model", "base"},
    "commands": {"training"},
    "package": {"model", "base"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] == "tokenizers":
        return "base"
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return { "device": "base", "checkpoint": "checkpoint", "gpt2": "checkpoint", "snapshots": "checkpoint",
            "train": "commands", "evaluate": "commands"}[parts[1]]


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str, list[str]]]:
    """(line, imported scratchformer module, names) for every import of our own code in ``source``."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "scratchformer":
                    found.append((node.lineno, a.name, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "scratchformer":
                continue
            names = [a.name for a in node.names]
            # ``from . import views`` imports a module, not a name
            subs = [f"{target}.{n}" for n in names if _is_module(f"{target}.{n}")]
            rest = [n for n in names if f"{target}.{n}" not in subs]
            if rest:
                found.append((node.lineno, target, rest))
            found += [(node.lineno, s, []) for s in subs]
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, list[tuple[int, str, list[str]]]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        out[name] = imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return out


def layer_violations(g) -> list[str]:
    bad = []
    for module, imports in g.items():
        for line, target, _ in imports:
            if layer_of(target) not in ALLOWED[layer_of(module)]:
                bad.append(f"{module} line {line} imports {target} ({layer_of(module)} → {layer_of(target)})")
    return bad


def private_imports(g) -> list[str]:
    return [f"{module} line {line} imports {n} from {target}" for module, imports in g.items()
            for line, target, names in imports for n in names
            if n.startswith("_") and not n.startswith("__")]


def cycles(g) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    edges = {m: sorted({t for _, t, _ in imps if t in g and t != m and not _is_parent(t, m)})
             for m, imps in g.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def _is_parent(a: str, b: str) -> bool:
    """Importing a package runs its __init__; a module importing its own package's __init__ (or the
    reverse, a package re-exporting its modules) is how Python packages work, not a circle."""
    return b.startswith(a + ".") or a.startswith(b + ".")


# ----------------------------------------------------------------------------------------- the rules

def test_every_module_has_a_layer():
    for module in graph():
        assert layer_of(module) in ALLOWED, module


def test_imports_only_go_down():
    assert layer_violations(graph()) == []


def test_no_import_circles():
    assert cycles(graph()) == []


def test_no_private_name_is_imported_from_another_module():
    assert private_imports(graph()) == []


FAST = "scratchformer.model.fast"
FAST_HELPER = "lstm_layer"   # the one name the readable model files may take from model/fast/


def test_the_readable_model_takes_only_one_helper_from_fast():
    """model/ outside model/fast/ is read next to the paper: the fast paths stay in fast/, and the
    readable files reach them through one named helper (training swaps its oneDNN products in with
    ``fast.accelerate(model)``; generation asks ``fast.fast_decoder(model)``; both live outside model/)."""
    seen, bad = [], []
    for module, imports in graph().items():
        if not module.startswith("scratchformer.model") or module == FAST or module.startswith(FAST + "."):
            continue
        for line, target, names in imports:
            if target == FAST or target.startswith(FAST + "."):
                (seen if (target, names) == (FAST, [FAST_HELPER]) else bad).append(f"{module} line {line}")
    assert bad == []
    assert seen, "the LSTM no longer takes its fast layer from model/fast/: update this test"


def test_the_layers_are_folders():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"tokenizers", "model", "inference", "training", "views", "app"}


# ---------------------------------------------------------------------- the checker catches mistakes

@pytest.mark.parametrize("module, source, expected", [
    ("scratchformer.model.attention", "from ..inference.sampling import sample_step", "model → inference"),
    ("scratchformer.model.attention", "from ..tokenizers import CharTokenizer", "model → base"),
    ("scratchformer.inference.blanks", "from ..training import tasks", "inference → training"),
    ("scratchformer.views.attention", "from ..model.trace import Trace", "views → model"),
    ("scratchformer.inference.seq2seq", "def f():\n    from scratchformer.app.bank import ModelBank",
     "inference → app"),
])
def test_the_checker_sees_an_import_that_goes_up(module, source, expected):
    g = {module: imports_of(source, module, False)}
    assert any(expected in v for v in layer_violations(g))


def test_the_checker_sees_a_circle_and_a_private_import():
    g = {"scratchformer.app.a": imports_of("from .b import _helper", "scratchformer.app.a", False),
         "scratchformer.app.b": imports_of("def f():\n    from . import a", "scratchformer.app.b", False)}
    g["scratchformer.app.b"] = [(2, "scratchformer.app.a", [])]
    assert cycles(g) == [["scratchformer.app.a", "scratchformer.app.b"]]
    assert private_imports(g) == ["scratchformer.app.a line 1 imports _helper from scratchformer.app.b"]


# ------------------------------------------------------------------ one token is not one character

VOCABULARY_BY_POSITION = {"itos", "stoi", "chars"}   # CharTokenizer's tables: its own business


def vocabulary_lookups(source: str) -> list[int]:
    """Lines that read a tokenizer's tables (``x.itos[i]``, ``x.stoi[c]``, ``x.chars``) directly."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in VOCABULARY_BY_POSITION)


def test_above_the_tokenizers_no_code_reads_a_vocabulary_by_position():
    """Above tokenizers/ a token is asked for its text (``token_text``, ``pieces``, ``texts``,
    ``label``), never looked up as a character in a table: a BPE token is not one character."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tokenizers" in path.relative_to(PACKAGE).parts:
            continue
        lines = vocabulary_lookups(path.read_text(encoding="utf-8"))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert found == {}


def test_the_vocabulary_check_sees_a_lookup():
    assert vocabulary_lookups("c = tokenizer.itos[i]\nj = tok.stoi['a']\nn = len(t.chars)") == [1, 2, 3]
    assert vocabulary_lookups("c = tokenizer.token_text(i)") == []
