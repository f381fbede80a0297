"""The import layers, checked from the source (every import, lazy ones inside functions included).

    function_app.py
    triggers/                                   the only importers of azure.functions
    signin/ tokens/ notifications/ sync/ upkeep/ api/ picker/ health.py   capabilities
    connections.py messages.py                  the shared records (they persist through storage)
    microsoft/ storage/                         adapters: storage is the only importer of its SDKs
    settings.py return_urls.py errors.py telemetry.py

Arrows point down only. Capabilities may use one another, but never in a circle (the sync does not
call back into the disconnect that calls it). Outside storage/, nothing reaches for the SDK clients
that storage keeps for tests (`storage.table(...)`, `storage.clients`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RANKS = {
    "function_app": 6,
    "triggers": 5,
    **dict.fromkeys(("signin", "tokens", "notifications", "sync", "upkeep", "api", "picker", "health"), 4),
    **dict.fromkeys(("connections", "messages"), 3),
    **dict.fromkeys(("microsoft", "storage"), 2),
    **dict.fromkeys(("settings", "return_urls", "errors", "telemetry"), 1),
}
CAPABILITIES = frozenset(name for name, rank in RANKS.items() if rank == 4)
STORAGE_SDKS = ("azure.storage", "azure.data", "azure.core")
RAW_CLIENTS = frozenset({"clients", "table", "queue", "container", "files_container", "blob_service", "queue_service",
                         "table_service", "reset_clients"})


def _unit(module: str) -> str | None:
    """The layer unit a module belongs to: a package or top-level module of `functions`."""
    if module == "function_app":
        return module
    parts = module.split(".")
    if parts[0] != "functions" or len(parts) < 2:
        return None
    return parts[1]


def _module_of(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import; `from a import b` counts as `a.b`, since b may be
    a module (functions.sync.forget) or a name in a (functions.errors.Conflict): both rank as `a`'s unit."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def _raw_client_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """`storage.<client accessor>` attribute uses (on a name bound to functions.storage)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "functions":
            aliases |= {alias.asname or alias.name for alias in node.names if alias.name == "storage"}
        if isinstance(node, ast.ImportFrom) and node.module == "functions.storage":
            for alias in node.names:
                if alias.name in RAW_CLIENTS:
                    aliases.add(f"!{alias.name}")
    uses = [(1, name[1:]) for name in aliases if name.startswith("!")]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr in RAW_CLIENTS):
            uses.append((node.lineno, node.attr))
    return uses


def layer_violations(root: Path) -> list[str]:
    sources = [root / "function_app.py", *sorted((root / "functions").rglob("*.py"))]
    problems: list[str] = []
    capability_edges: dict[str, set[str]] = {name: set() for name in CAPABILITIES}
    for path in sources:
        if not path.exists():
            continue
        module = _module_of(path, root)
        unit = _unit(module)
        where = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), filename=where)
        for line, imported in _imports(tree, module, path.name == "__init__.py"):
            if imported.startswith(STORAGE_SDKS) and unit != "storage":
                problems.append(f"{where}:{line} imports {imported}: only functions/storage/ may use the storage SDKs")
            if imported.startswith("azure.functions") and unit not in ("triggers", "function_app"):
                problems.append(f"{where}:{line} imports {imported}: only triggers/ and function_app.py may")
            target = _unit(imported)
            if target is None or target == unit or unit is None:
                continue
            if RANKS.get(target, 0) > RANKS.get(unit, 0):
                problems.append(f"{where}:{line} imports {imported}: {unit} (layer {RANKS.get(unit)}) may not "
                                f"import upward into {target} (layer {RANKS.get(target)})")
            if unit in CAPABILITIES and target in CAPABILITIES:
                capability_edges[unit].add(target)
        if unit != "storage":
            for line, name in _raw_client_uses(tree):
                problems.append(f"{where}:{line} uses storage.{name}: the core goes through storage's tables, "
                                "blobs and queues")
    problems.extend(_cycles(capability_edges))
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    found.append("capabilities import each other in a circle: " + " -> ".join([*trail, start]))
                elif nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
    # Each circle is found once from each of its members: report it once.
    unique: dict[frozenset[str], str] = {}
    for text in found:
        members = frozenset(text.split(": ", 1)[1].split(" -> "))
        unique.setdefault(members, text)
    return sorted(unique.values())


def test_imports_point_down_the_layers_only():
    assert layer_violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"function_app.py": "", "functions/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    ({"functions/sync/bad.py": "def f():\n    from functions.triggers import webhook\n"},
     "functions/sync/bad.py:2 imports functions.triggers.webhook: sync (layer 4) may not import upward into triggers"),
    ({"functions/errors.py": "from functions import connections\n"},
     "functions/errors.py:1 imports functions.connections: errors (layer 1) may not import upward into connections"),
    ({"functions/storage/tables.py": "from functions.sync.itemrows import row_key\n"},
     "functions/storage/tables.py:1 imports functions.sync.itemrows.row_key: storage (layer 2) may not import upward"),
    ({"functions/sync/bad.py": "from azure.data.tables import TableClient\n"},
     "functions/sync/bad.py:1 imports azure.data.tables.TableClient: only functions/storage/ may use the storage SDKs"),
    ({"functions/api/bad.py": "import azure.core.exceptions\n"},
     "functions/api/bad.py:1 imports azure.core.exceptions: only functions/storage/ may use the storage SDKs"),
    ({"functions/api/bad.py": "import azure.functions as func\n"},
     "functions/api/bad.py:1 imports azure.functions: only triggers/ and function_app.py may"),
    ({"functions/sync/bad.py": "from functions import storage\nx = storage.table('t')\n"},
     "functions/sync/bad.py:2 uses storage.table: the core goes through storage's tables"),
    ({"functions/sync/bad.py": "from . import engine\nfrom ..upkeep import disconnect\n",
      "functions/upkeep/disconnect.py": "from functions.sync import forget\n"},
     "capabilities import each other in a circle: sync -> upkeep -> sync"),
])
def test_the_checker_flags_each_kind_of_violation(tmp_path, files, expected):
    problems = layer_violations(_tree(tmp_path, files))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_checker_accepts_downward_and_lazy_imports(tmp_path):
    root = _tree(tmp_path, {
        "functions/triggers/web.py": "import azure.functions as func\ndef f():\n    from functions.sync import engine\n",
        "functions/sync/engine.py": "from functions import connections, storage\nfrom functions.errors import Conflict\n",
        "functions/storage/tables.py": "from azure.data.tables import TableClient\nfrom functions.storage import clients\n",
        "functions/connections.py": "from functions import storage\nx = storage.Table('t')\n",
    })
    assert layer_violations(root) == []
