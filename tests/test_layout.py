"""The package's layers and public paths (README, "Architecture").

``fastmnist/`` holds the core (with ``backends/`` and ``data/``), ``fastmnist/integrations/``
meets other tools' APIs and file formats, and ``fastmnist/tools/`` holds the commands and the
measuring. Imports go down the layers, no module reaches into another's underscore names, and
each integration a user imports keeps its public path at the top of the package.
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: public path -> (the module it re-exports, the package its import needs)
PUBLIC = {
    "fastmnist.compat": ("fastmnist.integrations.compat", None),
    "fastmnist.sklearn": ("fastmnist.integrations.sklearn", "sklearn"),
    "fastmnist.images": ("fastmnist.integrations.images", None),
    "fastmnist.plots": ("fastmnist.integrations.evaluation_plots", None),
}

#: the imports that go up a layer on purpose: (importer, imported)
UPWARD = {("fastmnist.model", "fastmnist.integrations.onnx")}  # MLP.to_onnx, imported when called


@pytest.mark.parametrize("public", sorted(PUBLIC))
def test_public_path_is_its_integration(public):
    """`from fastmnist.sklearn import MLPClassifier` and the like give the integration's own
    objects, and everything it exports."""
    implementation, needs = PUBLIC[public]
    if needs:
        pytest.importorskip(needs)
    pub, impl = importlib.import_module(public), importlib.import_module(implementation)
    assert pub.__all__ == impl.__all__
    assert {n for n in vars(pub) if not n.startswith("_")} == set(impl.__all__)
    for name in impl.__all__:
        assert getattr(pub, name) is getattr(impl, name), name


def _is_module(dotted):
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules():
    """(dotted name, its package, syntax tree) of every module of fastmnist."""
    for path in sorted((ROOT / "fastmnist").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = ".".join(parts[:-1])
        name = package if parts[-1] == "__init__" else ".".join(parts)
        yield name, package, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(package, tree):
    """(module, names, line) for each import of a fastmnist module, relative ones resolved;
    `names` are those of ``from module import names`` (empty for ``import module``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] == "fastmnist":
                yield module, [(a.name, a.asname or a.name) for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "fastmnist":
                    yield a.name, [], node.lineno


def test_no_module_uses_another_modules_private_names():
    """No ``from x import _name`` and no ``x._name`` on an imported fastmnist module (a private
    module of the package, ``from . import _jit``, is imported whole and used by its public
    names)."""
    found = []
    for name, package, tree in _modules():
        modules = set()  # local names bound to imported fastmnist modules
        for module, names, line in _imports(package, tree):
            for imported, bound in names:
                if _is_module(f"{module}.{imported}"):
                    modules.add(bound)
                elif imported.startswith("_") and not imported.startswith("__"):
                    found.append(f"{name}:{line}: from {module} import {imported}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)


def _layer(module):
    if module.startswith("fastmnist.tools"):
        return 2, "tools"
    if module.startswith("fastmnist.integrations") or module in PUBLIC:
        return 1, "integrations"
    return 0, "core"


def test_imports_go_down_the_layers():
    """The core (backends and data included) imports neither the integrations nor the tools,
    and the integrations do not import the tools: a change to a command or to the study cannot
    break training, and the core can be read without them. (The command line reaches the
    commands by name, ``fastmnist.tools.commands.<name>``, from ``fastmnist.cli``.)"""
    found = []
    for name, package, tree in _modules():
        for module, names, line in _imports(package, tree):
            targets = [f"{module}.{n}" for n, _ in names if _is_module(f"{module}.{n}")]
            for target in targets or [module]:
                if _layer(target) > _layer(name) and (name, target) not in UPWARD:
                    found.append(f"{name}:{line} ({_layer(name)[1]}) imports {target} "
                                 f"({_layer(target)[1]})")
    assert not found, "\n".join(found)
