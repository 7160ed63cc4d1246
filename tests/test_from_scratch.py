"""The library is written from scratch: no module of scratchformer/ uses PyTorch's ready-made attention,
Transformer or LSTM, and only views/ and app/ import plotting or Gradio.

The check reads each module's syntax tree (so docstrings that *mention* nn.LSTM for comparison are
fine): imports, attribute chains rooted at a torch import, getattr/import_module with string names.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scratchformer"
MODULES = sorted(PACKAGE.rglob("*.py"))

READY_MADE = {"MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerEncoderLayer",
              "TransformerDecoder", "TransformerDecoderLayer", "LSTM", "LSTMCell",
              "multi_head_attention_forward", "lstm", "lstm_cell",  # the last two: torch's fused kernels
              "_native_multi_head_attention", "_transformer_encoder_layer_fwd"}
READY_MADE_MODULES = ("torch.nn.modules.rnn", "torch.nn.modules.transformer")
FIGURE_PACKAGES = {"gradio", "plotly", "matplotlib"}
MAY_DRAW = {"views", "app"}   # the folders that draw: the views and the Gradio app


def _root(node: ast.AST):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def ready_made_uses(source: str) -> list[str]:
    """Every place in ``source`` that reaches for torch's own attention / Transformer / LSTM."""
    tree = ast.parse(source)
    torch_names, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    torch_names.add((a.asname or a.name).split(".")[0])
                if a.name.startswith(READY_MADE_MODULES):
                    found.append(f"line {node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("torch"):
            for a in node.names:
                torch_names.add(a.asname or a.name)
                if a.name in READY_MADE or node.module.startswith(READY_MADE_MODULES):
                    found.append(f"line {node.lineno}: from {node.module} import {a.name}")
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in READY_MADE and _root(node) in torch_names:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            text = node.value.strip()
            qualified = text.startswith(("nn.", "torch.", "F.", "_VF."))  # a bare "LSTM" may be ours
            if qualified and text.split(".")[-1] in READY_MADE or text.startswith(READY_MADE_MODULES):
                found.append(f"line {node.lineno}: string {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "getattr" and any(a in READY_MADE for a in args):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def figure_imports(source: str) -> list[str]:
    """Imports (also via importlib / __import__) of gradio, plotly or matplotlib."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] in FIGURE_PACKAGES]
    return found


# --------------------------------------------------------------------- the scanners really scan

@pytest.mark.parametrize("snippet", [
    "import torch\nm = torch.nn.MultiheadAttention(8, 2)",
    "from torch import nn\nlayer = nn.TransformerEncoderLayer(8, 2)",
    "import torch.nn as nn\nx = nn.Transformer()",
    "from torch.nn import LSTM\nrnn = LSTM(3, 4)",
    "from torch.nn import LSTMCell as Cell",
    "from torch.nn.modules.rnn import LSTM",
    "import torch.nn.modules.transformer",
    "import torch.nn.functional as F\nF.multi_head_attention_forward(q, k, v)",
    "from torch.nn.functional import multi_head_attention_forward",
    "from torch import nn\ncls = getattr(nn, 'LSTM')",
    "import torch\ncls = getattr(torch.nn, 'TransformerDecoder')",
    "import torch\nout = torch.lstm(x, hx, params, True, 1, 0.0, False, False, True)",
    "from torch import _VF\n_VF.lstm_cell(x, hx, w_ih, w_hh)",
    "import importlib\nm = importlib.import_module('torch.nn.modules.rnn')",
    "import torch\nimport operator\ncls = operator.attrgetter('nn.LSTM')(torch)",
])
def test_scanner_catches_ready_made_modules(snippet):
    assert ready_made_uses(snippet)


def test_scanner_allows_our_own_classes_and_docstrings():
    ours = ('"""Same gate order as ``nn.LSTM``; compare with nn.MultiheadAttention."""\n'
            "import torch\nfrom torch import nn\nfrom .lstm import LSTM, LSTMCell\n"
            "class LSTMLM(nn.Module):\n    def __init__(self):\n        self.lstm = LSTM(3, 4)\n"
            "        self.cell = LSTMCell(3, 4)\n        self.lin = nn.Linear(3, 4)\n"
            "__all__ = ['LSTM', 'LSTMCell']\n")
    assert ready_made_uses(ours) == []


@pytest.mark.parametrize("snippet", ["import gradio as gr", "import plotly.graph_objects as go",
                                     "from matplotlib import pyplot as plt", "import matplotlib.pyplot",
                                     "import importlib\nimportlib.import_module('plotly.express')"])
def test_scanner_catches_figure_imports(snippet):
    assert figure_imports(snippet)


# ------------------------------------------------------------------------------- the library

def test_there_are_modules_to_scan():
    names = {str(p.relative_to(PACKAGE)) for p in MODULES}
    assert {"model/attention.py", "model/layers.py", "model/lstm.py", "model/fast/lstm_bptt.py",
            "model/transformer.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_builds_its_own_attention_transformer_and_lstm(path):
    assert ready_made_uses(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] not in MAY_DRAW],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_views_and_app_import_gradio_plotly_matplotlib(path):
    assert figure_imports(path.read_text(encoding="utf-8")) == []
