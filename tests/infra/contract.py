"""The contract between the code and infra/: a small reader of the parsed Bicep, and checkers.

No Bicep compiler runs here, so `pycep-parser` turns each file into JSON and this module evaluates the
little that matters (literals, variables, parameters passed by the calling module, `${}` and
`union`/`concat`). Anything it cannot evaluate stays `Unresolved`, which never satisfies a check.
Checkers take the parsed model and return the problems they find, so tests can show they bite.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@dataclass(frozen=True)
class Unresolved:
    expression: Any

    def __str__(self) -> str:
        return f"<unresolved {self.expression!r}>"


@dataclass
class Infra:
    """Every .bicep file under infra/, parsed; keys are paths relative to infra/ ('app/api.bicep')."""

    files: dict[str, dict]

    @classmethod
    def load(cls, root: Path = INFRA, replace: dict[str, tuple[str, str]] | None = None) -> Infra:
        """Parse infra/; `replace` maps a file to (old, new) text to edit before parsing (mutation tests)."""
        parser = BicepParser()
        files = {}
        for path in sorted(root.rglob("*.bicep")):
            relative = path.relative_to(root).as_posix()
            text = path.read_text()
            if replace and relative in replace:
                old, new = replace[relative]
                assert old in text, f"{old!r} is not in {relative}"
                text = text.replace(old, new)
            files[relative] = parser.parse(text=text)
        return cls(files)

    def copy(self) -> Infra:
        return Infra(copy.deepcopy(self.files))

    # -- walking ------------------------------------------------------------------------------------

    def resources(self, type_suffix: str) -> Iterator[tuple[str, str, dict]]:
        """(file, symbol, resource) of each resource whose type ends with `type_suffix`."""
        for file, parsed in self.files.items():
            for symbol, resource in (parsed.get("resources") or {}).items():
                if resource["type"].endswith(type_suffix) and not resource.get("existing"):
                    yield file, symbol, resource

    def callers(self, file: str) -> Iterator[tuple[str, dict]]:
        """(calling file, module params) of each `module` that deploys `file`."""
        for caller, parsed in self.files.items():
            for module in (parsed.get("modules") or {}).values():
                target = module["detail"]["path"]
                resolved = (Path(caller).parent / target).as_posix().removeprefix("./")
                if _normalise(resolved) == file:
                    yield caller, module["config"].get("params") or {}

    # -- evaluating ---------------------------------------------------------------------------------

    def evaluate(self, expression: Any, file: str, bindings: dict[str, Any] | None = None) -> Any:
        bindings = bindings or {}
        parsed = self.files[file]
        if isinstance(expression, str):
            if expression in bindings:
                return bindings[expression]
            variables = parsed.get("variables") or {}
            if expression in variables:
                return self.evaluate(variables[expression]["value"], file)
            parameters = parsed.get("parameters") or {}
            if expression in parameters:
                return self._parameter(expression, file)
            if "${" in expression:
                return self._interpolate(expression, file, bindings)
            return expression
        if isinstance(expression, list):
            return [self.evaluate(item, file, bindings) for item in expression]
        if isinstance(expression, dict):
            if "function" in expression:
                return self._function(expression["function"], file, bindings)
            if "operator" in expression:
                return _accessor(expression["operator"]) or Unresolved(expression)
            # Quoted keys ('azd-env-name') keep their quotes in pycep's output.
            return {_unquote(key): self.evaluate(value, file, bindings) for key, value in expression.items()}
        return expression

    def _parameter(self, name: str, file: str) -> Any:
        passed = [(caller, params[name]) for caller, params in self.callers(file) if name in params]
        if len(passed) == 1:
            caller, value = passed[0]
            return self.evaluate(value, caller)
        default = self.files[file]["parameters"][name].get("default")
        return self.evaluate(default, file) if default is not None else Unresolved(name)

    def _interpolate(self, text: str, file: str, bindings: dict[str, Any]) -> str:
        def substitute(match: re.Match[str]) -> str:
            value = self.evaluate(match.group(1), file, bindings)
            return value if isinstance(value, str) and value != match.group(1) else match.group(0)

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", substitute, text)

    def _function(self, function: dict, file: str, bindings: dict[str, Any]) -> Any:
        arguments = [self.evaluate(value, file, bindings) for value in (function.get("parameters") or {}).values()]
        kind = function["type"]
        if kind == "union" and all(isinstance(a, dict) for a in arguments):
            merged: dict = {}
            for argument in arguments:
                merged.update(argument)
            return merged
        if kind == "concat" and all(isinstance(a, list) for a in arguments):
            return [item for argument in arguments for item in argument]
        if kind == "string" and len(arguments) == 1 and not isinstance(arguments[0], Unresolved):
            return str(arguments[0])
        return Unresolved(function)

    def resource_names(self, type_suffix: str) -> set[Any]:
        """The names of every resource of a type, loops expanded over their evaluated arrays."""
        names: set[Any] = set()
        for file, _, resource in self.resources(type_suffix):
            config = resource["config"]
            loop = config.get("loop_type")
            if not loop:
                names.add(_hashable(self.evaluate(config["name"], file)))
                continue
            items = self.evaluate(loop["detail"]["array_name"], file)
            if not isinstance(items, list):
                names.add(Unresolved(loop))
                continue
            for item in items:
                names.add(_hashable(self.evaluate(config["config"]["name"], file, {loop["detail"]["item_name"]: item})))
        return names

    def app_settings(self) -> dict[str, Any]:
        """The function app's settings: every `Microsoft.Web/sites/config` named appsettings, evaluated."""
        settings: dict[str, Any] = {}
        for file, _, resource in self.resources("Microsoft.Web/sites/config"):
            if resource["config"]["name"] == "appsettings":
                value = self.evaluate(resource["config"]["properties"], file)
                assert isinstance(value, dict), f"app settings in {file} could not be evaluated: {value}"
                settings.update(value)
        return settings

    def role_assignments(self) -> list[RoleAssignment]:
        found = []
        for file, symbol, resource in self.resources("Microsoft.Authorization/roleAssignments"):
            config = resource["config"]
            properties = config.get("properties") or {}
            definition = properties.get("roleDefinitionId") or {}
            role_id = Unresolved(definition)
            if isinstance(definition, dict) and definition.get("function", {}).get("type") == "subscription_resource_id":
                role_id = self.evaluate(definition["function"]["parameters"]["resource_name_1"], file)
            scope = config.get("scope")
            scope_type = None  # no scope: the deployment's own scope (resource group or subscription)
            if isinstance(scope, str):
                target = (self.files[file].get("resources") or {}).get(scope)
                scope_type = target["type"] if target else Unresolved(scope)
            found.append(RoleAssignment(file, symbol, role_id, scope_type, properties.get("principalId")))
        return found

    def outputs(self, file: str = "main.bicep") -> dict[str, Any]:
        return {name: self.evaluate(output["value"], file) for name, output in (self.files[file].get("outputs") or {}).items()}


@dataclass(frozen=True)
class RoleAssignment:
    file: str
    symbol: str
    role_id: Any
    scope_type: Any
    principal: Any


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def _accessor(operator: dict) -> str | None:
    """`identity.outputs.principalId` as that dotted text (a reference, compared as written)."""
    if operator.get("type") != "property_accessor":
        return None
    parts = []
    for operand in operator["operands"].values():
        if isinstance(operand, str):
            parts.append(operand)
        elif isinstance(operand, dict) and "operator" in operand and (inner := _accessor(operand["operator"])):
            parts.append(inner)
        else:
            return None
    return ".".join(parts)


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, Unresolved)) else Unresolved(str(value))


# -- what the code reads --------------------------------------------------------------------------


def settings_read_by_code(root: Path = ROOT) -> set[str]:
    """Every setting name the app reads: `os.environ.get/[]`, `os.getenv` and `in os.environ` with a
    literal or module-constant name in function_app.py and functions/, plus `settings.DEFAULTS` (read
    through a helper) and the storage connection (read by prefix). Dynamic names are covered by those two."""
    from functions import settings, storage

    names = set(settings.DEFAULTS) | {storage.CONNECTION}
    for path in [root / "function_app.py", *sorted((root / "functions").rglob("*.py"))]:
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            for name_node in _environment_keys(node):
                if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
                    names.add(name_node.value)
                elif isinstance(name_node, ast.Name) and name_node.id in constants:
                    names.add(constants[name_node.id])
    return names


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"


def _environment_keys(node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_environ(func.value):
            yield node.args[0]
        if isinstance(func, ast.Attribute) and func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os":
            yield node.args[0]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        yield node.slice
    if isinstance(node, ast.Compare) and len(node.comparators) == 1 and _is_environ(node.comparators[0]):
        yield node.left


# -- checkers -------------------------------------------------------------------------------------

# App settings Flex Consumption refuses or no longer supports (its docs list them as deprecated for
# Flex): the runtime, version, content share and build are set by functionAppConfig and the platform.
FLEX_REJECTED_SETTINGS = frozenset({
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION", "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET", "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE", "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "linuxFxVersion",
})
FLEX_REJECTED_SITE_PROPERTIES = frozenset({"linuxFxVersion", "windowsFxVersion"})


def missing_settings(required: set[str], declared: dict[str, Any], connection: str) -> set[str]:
    """Settings the code reads that the app doesn't declare; the storage connection is identity-based
    in Azure, so it counts as declared through its `__accountName` (or `__*ServiceUri`) settings."""
    missing = {name for name in required if name != connection and name not in declared}
    if connection in required and not (
        f"{connection}__accountName" in declared
        or all(f"{connection}__{service}ServiceUri" in declared for service in ("blob", "queue", "table"))
    ):
        missing.add(connection)
    return missing


def identity_connection_problems(declared: dict[str, Any], connection: str) -> list[str]:
    problems = []
    if connection in declared:
        problems.append(f"{connection} is set: in Azure it must be identity-based ({connection}__accountName)")
    if declared.get(f"{connection}__credential") != "managedidentity":
        problems.append(f"{connection}__credential must be 'managedidentity'")
    if f"{connection}__clientId" not in declared:
        problems.append(f"{connection}__clientId must name the user-assigned identity")
    return problems


def secret_problems(declared: dict[str, Any], secret_settings: set[str]) -> list[str]:
    return [
        f"{name} must be a Key Vault reference, got {declared.get(name)!r}"
        for name in sorted(secret_settings)
        if not (isinstance(declared.get(name), str) and declared[name].startswith("@Microsoft.KeyVault(SecretUri="))
    ]


def flex_problems(infra: Infra) -> list[str]:
    problems = [f"app setting {name} is rejected by Flex Consumption" for name in sorted(FLEX_REJECTED_SETTINGS & set(infra.app_settings()))]
    for file, symbol, site in infra.resources("Microsoft.Web/sites"):
        found = _keys(site["config"]) & FLEX_REJECTED_SITE_PROPERTIES
        problems += [f"{file}:{symbol} sets {key}, which Flex Consumption rejects" for key in sorted(found)]
    return problems


def always_ready_problems(infra: Infra, trigger_types: set[str]) -> list[str]:
    """Graph's webhook deadlines (10 s for validation, 3 s for notifications) need a warm HTTP
    instance: with any HTTP-triggered function, Flex Consumption must keep the `http` group ready."""
    if "httpTrigger" not in trigger_types:
        return []
    problems = []
    for file, symbol, site in infra.resources("Microsoft.Web/sites"):
        config = site["config"].get("properties", {}).get("functionAppConfig") or {}
        entries = (config.get("scaleAndConcurrency") or {}).get("alwaysReady") or []
        ready = {infra.evaluate(entry.get("name"), file): infra.evaluate(entry.get("instanceCount"), file)
                 for entry in entries if isinstance(entry, dict)}
        count = ready.get("http")
        if not isinstance(count, int) or count < 1:
            problems.append(f"{file}:{symbol} keeps no always-ready instance for the http group (got {count!r})")
    return problems


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for child in value.values() for key in _keys(child)}
    if isinstance(value, list):
        return {key for child in value for key in _keys(child)}
    return set()


def missing_names(required: set[str], declared: set[Any]) -> set[str]:
    return {name for name in required if name not in declared}


@dataclass(frozen=True)
class AllowedRole:
    name: str
    scope_type: str
    reason: str


def role_problems(assignments: list[RoleAssignment], allowed: dict[str, AllowedRole], needed: set[str]) -> list[str]:
    """Every assignment is allowed and scoped to its one resource; every needed role is granted."""
    problems = []
    for assignment in assignments:
        role = allowed.get(assignment.role_id) if isinstance(assignment.role_id, str) else None
        where = f"{assignment.file}:{assignment.symbol}"
        if role is None:
            problems.append(f"{where} grants role {assignment.role_id}, which is not on the allow-list")
        elif assignment.scope_type != role.scope_type:
            problems.append(f"{where} grants {role.name} at {assignment.scope_type or 'the deployment scope'}, not on a {role.scope_type}")
    granted = {a.role_id for a in assignments if isinstance(a.role_id, str)}
    problems += [f"role {allowed[role_id].name} ({role_id}) is needed and not granted" for role_id in sorted(needed - granted)]
    return problems
