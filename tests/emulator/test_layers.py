"""The emulator's imports point one way: data → state → services → routes → server."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "devtools" / "emulator"
# A module's layer; it may import only from its own layer or lower ones.
LAYERS = {"data": 0, "state": 1, "services": 2, "routes": 3, "server": 4}
DATA = {"content", "drive", "changes", "lazy", "options", "times", "addressing", "errors"}


def layer_of(module: str) -> int:
    """'services.identity' -> 2; 'drive' -> 0; '__main__' and the package itself sit on top."""
    head = module.split(".")[0]
    if head in DATA:
        return LAYERS["data"]
    if head in ("__init__", "__main__", "server"):
        return LAYERS["server"]
    return LAYERS[head]


def imports_of(path: Path) -> set[str]:
    """The package's own modules that a file imports, as dotted names relative to the package."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = list(here[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:  # from ..state import User
                found.add(".".join([*base, *node.module.split(".")]))
            else:  # from . import pages
                found.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("devtools.emulator."):
            found.add(node.module.removeprefix("devtools.emulator."))
    return found


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        own = layer_of(module)
        for imported in imports_of(path):
            if imported and layer_of(imported) > own:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_only_the_server_imports_the_server_and_only_routes_import_starlette():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        text = path.read_text()
        if layer_of(module) < LAYERS["routes"] and "starlette" in text:
            offenders.append(f"{module} uses starlette")
        if "Emulator" in text and layer_of(module) < LAYERS["server"] and "import" in text:
            tree = ast.parse(text)
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
            if "Emulator" in names:
                offenders.append(f"{module} imports Emulator")
    assert offenders == []
