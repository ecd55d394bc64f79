"""MedSeqFTLib stays pure Python: no slicer/qt/ctk/vtk imports, no unsafe unpickling, light CLI."""

import ast
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "MedSeqFTLib"
FORBIDDEN = {"slicer", "qt", "ctk", "vtk", "PySide6", "PyQt5", "PyQt6"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def test_library_never_imports_gui_stacks():
    files = sorted(LIB.rglob("*.py"))
    assert len(files) > 10
    bad = [f"{f.relative_to(LIB)}:{line} imports {mod}" for f in files for mod, line in _imports(f) if mod in FORBIDDEN]
    assert bad == []


def test_torch_load_always_weights_only():
    bad = []
    for f in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(getattr(node.func, "value", None), "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    bad.append(f"{f.name}:{node.lineno}")
    assert bad == []


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from MedSeqFTLib.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'monai', 'peft', 'matplotlib', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
