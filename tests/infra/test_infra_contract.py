"""infra/ gives the code everything it reads and uses, and its identity no more than the code needs.

The requirements come from the code (settings it reads, queues, tables and containers it names, clients
it builds), never from a second hand-kept list; the Bicep side is read with pycep-parser.
"""

from __future__ import annotations

import functools
import json
import re

import pytest
import yaml
from pycep import BicepParser

from functions import settings as app_settings_module
from functions import storage
from tests.infra.contract import (
    INFRA,
    ROOT,
    AllowedRole,
    Infra,
    Unresolved,
    always_ready_problems,
    flex_problems,
    identity_connection_problems,
    missing_names,
    missing_settings,
    role_problems,
    secret_problems,
    settings_read_by_code,
)

# Settings whose values are secrets: in Azure they must come from Key Vault.
SECRET_SETTINGS = {"MICROSOFT_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS"}

# The only roles the app's identity may hold, each on one kind of resource, and why.
ALLOWED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": AllowedRole(
        "Storage Blob Data Owner", "Microsoft.Storage/storageAccounts",
        "the mirror's blobs; the host's locks, keys and Flex deployment package (documented role for identity-based AzureWebJobsStorage)"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": AllowedRole(
        "Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts",
        "queue triggers (dequeue, delete, poison) and the app's sends"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": AllowedRole(
        "Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "the app's tables"),
    "4633458b-17de-408a-b874-0445c86b69e6": AllowedRole(
        "Key Vault Secrets User", "Microsoft.KeyVault/vaults", "read the secrets behind Key Vault references"),
    "3913510d-42f4-4e42-8a64-420c390055eb": AllowedRole(
        "Monitoring Metrics Publisher", "Microsoft.Insights/components", "send telemetry with Entra auth"),
}
ROLE_BY_NAME = {role.name: role_id for role_id, role in ALLOWED_ROLES.items()}


@functools.cache
def infra() -> Infra:
    return Infra.load()


def needed_roles(declared: dict) -> set[str]:
    """The roles the code's own actions call for, read from the code and the app's settings."""
    storage_source = "\n".join(path.read_text() for path in sorted((ROOT / "functions" / "storage").glob("*.py")))
    needed = set()
    # The host always needs blobs (locks, keys) and queues (the triggers); tables only if the app builds them.
    if "BlobServiceClient" in storage_source or "queueTrigger" in str(declared):
        needed.add(ROLE_BY_NAME["Storage Blob Data Owner"])
    if "QueueServiceClient" in storage_source:
        needed.add(ROLE_BY_NAME["Storage Queue Data Contributor"])
    if "TableServiceClient" in storage_source:
        needed.add(ROLE_BY_NAME["Storage Table Data Contributor"])
    if any(isinstance(v, str) and v.startswith("@Microsoft.KeyVault(") for v in declared.values()):
        needed.add(ROLE_BY_NAME["Key Vault Secrets User"])
    if "Authorization=AAD" in str(declared.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")):
        needed.add(ROLE_BY_NAME["Monitoring Metrics Publisher"])
    return needed


@pytest.mark.parametrize("path", sorted(p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*.bicep")))
def test_every_bicep_file_parses(path):
    parsed = BicepParser().parse(file_path=INFRA / path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_modules_are_local_files_not_registry_modules():
    for file, parsed in infra().files.items():
        for symbol, module in (parsed.get("modules") or {}).items():
            assert module["type"] == "local", f"{file}:{symbol} uses a registry module (needs network to restore)"
    assert {"main.bicep", "core/storage.bicep", "core/keyvault.bicep", "core/monitoring.bicep",
            "app/api.bicep", "app/identity.bicep", "app/rbac.bicep"} <= set(infra().files)


def test_every_setting_the_code_reads_is_an_app_setting_in_azure():
    read = settings_read_by_code()
    assert set(app_settings_module.DEFAULTS) <= read and storage.CONNECTION in read
    assert missing_settings(read, infra().app_settings(), storage.CONNECTION) == set()


def test_the_worker_starts_in_azure_with_the_environment_the_local_host_gives_it():
    from devtools.host.config import PROCESS_ENVIRONMENT

    settings = infra().app_settings()
    assert {name: settings.get(name) for name in PROCESS_ENVIRONMENT} == PROCESS_ENVIRONMENT


def test_every_setting_the_code_reads_is_in_local_settings_example():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert sorted(settings_read_by_code() - set(values)) == []


def test_the_settings_azure_gets_pass_the_apps_own_validation(monkeypatch):
    """Literal values from Bicep go through settings(); unknowable ones (secrets, host name) get stand-ins."""
    from devtools.keys import new_key_entry

    stand_ins = {
        "MICROSOFT_CLIENT_SECRET": "a-secret", "TOKEN_ENCRYPTION_KEYS": new_key_entry("k1"),
        "MICROSOFT_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
        "ALLOWED_RETURN_URLS": "https://app.example.com/*",
    }
    for name in app_settings_module.DEFAULTS:
        value = infra().app_settings()[name]
        if isinstance(value, Unresolved) or name in stand_ins:
            value = stand_ins[name]
        value = re.sub(r"\$\{[^}]*\}", "func-api-example.azurewebsites.net", value)
        monkeypatch.setenv(name, value)
    app_settings_module.reload_settings()
    try:
        loaded = app_settings_module.settings()
    finally:
        app_settings_module.reload_settings()
    assert loaded.public_base_url.startswith("https://")
    assert loaded.files_container == app_settings_module.DEFAULTS["FILES_CONTAINER"]
    assert loaded.onedrive_scopes == tuple(app_settings_module.DEFAULTS["ONEDRIVE_SCOPES"].split())
    assert loaded.microsoft_authority == app_settings_module.DEFAULTS["MICROSOFT_AUTHORITY"]


def test_storage_is_reached_with_the_app_identity_never_a_key():
    declared = infra().app_settings()
    assert identity_connection_problems(declared, storage.CONNECTION) == []
    [(file, _, account)] = list(infra().resources("Microsoft.Storage/storageAccounts"))
    properties = account["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    [(file, _, blobs)] = list(infra().resources("Microsoft.Storage/storageAccounts/blobServices"))
    retention = blobs["config"]["properties"]["deleteRetentionPolicy"]
    assert retention["enabled"] is True and infra().evaluate(retention["days"], file) >= 1


def test_secrets_are_key_vault_references_resolved_by_the_app_identity():
    assert set(app_settings_module.DEFAULTS) >= SECRET_SETTINGS
    declared = infra().app_settings()
    assert secret_problems(declared, SECRET_SETTINGS) == []
    [(file, _, site)] = list(infra().resources("Microsoft.Web/sites"))
    assert site["config"]["properties"]["keyVaultReferenceIdentity"] == "identityId"
    [(_, _, vault)] = list(infra().resources("Microsoft.KeyVault/vaults"))
    assert vault["config"]["properties"]["enableRbacAuthorization"] is True
    for parameter in ("microsoftClientSecret", "tokenEncryptionKeys"):
        decorators = infra().files["main.bicep"]["parameters"][parameter]["decorators"]
        assert {"type": "secure"} in decorators, f"{parameter} must be @secure()"


def test_every_queue_table_and_container_the_code_uses_exists():
    queues = set(storage.Queues.ALL) | {storage.poison_queue(name) for name in storage.Queues.TRIGGERED}
    assert missing_names(queues, infra().resource_names("queueServices/queues")) == set()
    assert missing_names(set(storage.Tables.ALL), infra().resource_names("tableServices/tables")) == set()
    containers = infra().resource_names("blobServices/containers")
    files_container = infra().app_settings()["FILES_CONTAINER"]
    assert missing_names({app_settings_module.DEFAULTS["FILES_CONTAINER"], files_container}, containers) == set()
    [(file, _, site)] = list(infra().resources("Microsoft.Web/sites"))
    package = infra().evaluate(site["config"]["properties"]["functionAppConfig"]["deployment"]["storage"]["value"], file)
    assert any(isinstance(name, str) and package.endswith(name) for name in containers), package


def test_declared_storage_names_are_valid():
    for name in infra().resource_names("queueServices/queues"):
        assert re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", name), name
    for name in infra().resource_names("tableServices/tables"):
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", name), name


def test_roles_cover_what_the_code_does_and_nothing_broader():
    assignments = infra().role_assignments()
    assert role_problems(assignments, ALLOWED_ROLES, needed_roles(infra().app_settings())) == []
    # Only the app's own identity is granted anything.
    assert {a.principal for a in assignments} == {"appPrincipalId"}
    [(caller, params)] = list(infra().callers("app/rbac.bicep"))
    assert infra().evaluate(params["appPrincipalId"], caller) == "identity.outputs.principalId"


def test_nothing_flex_consumption_rejects_and_the_runtime_is_python_311():
    assert flex_problems(infra()) == []
    [(_, _, plan)] = list(infra().resources("Microsoft.Web/serverfarms"))
    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    [(_, _, site)] = list(infra().resources("Microsoft.Web/sites"))
    assert site["config"]["kind"] == "functionapp,linux"
    assert site["config"]["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}


def trigger_types() -> set[str]:
    from tests.fixtures.app import function_specs

    return {spec.trigger for spec in function_specs()}


def test_the_http_functions_are_always_ready_for_graphs_deadlines():
    assert "httpTrigger" in trigger_types()  # the webhook, at least
    assert always_ready_problems(infra(), trigger_types()) == []


def test_outputs_name_the_urls_to_register():
    from functions.settings import Settings

    base = "https://base.example"
    probe = Settings({"PUBLIC_BASE_URL": base})
    outputs = infra().outputs()
    assert "FUNCTION_BASE_URL" in outputs
    assert outputs["OAUTH_REDIRECT_URI"].endswith(probe.redirect_uri.removeprefix(base))
    assert outputs["NOTIFICATION_URL"].endswith(probe.notification_url.removeprefix(base))
    # The base URL printed for registration is the one the app builds its own redirect URI from.
    api_outputs = infra().outputs("app/api.bicep")
    assert api_outputs["baseUrl"] == infra().app_settings()["PUBLIC_BASE_URL"]
    assert api_outputs["baseUrl"].startswith("https://")


def test_main_parameters_give_every_required_parameter_from_the_azd_environment():
    parameters = infra().files["main.bicep"]["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(parameters), f"not parameters of main.bicep: {set(given) - set(parameters)}"
    required = {name for name, p in parameters.items() if p.get("default") is None}
    assert required <= set(given), f"required but not mapped: {required - set(given)}"
    for name, entry in given.items():
        if {"type": "secure"} in parameters[name]["decorators"]:
            assert re.fullmatch(r"\$\{[A-Z_]+\}", entry["value"]), f"{name} must come from the azd environment, not the file"


def test_azure_yaml_deploys_this_folder_as_a_python_function_app():
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    api = project["services"]["api"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    # azd finds the site to deploy the `api` service to by this tag.
    [(file, _, site)] = list(infra().resources("Microsoft.Web/sites"))
    assert infra().evaluate(site["config"]["tags"], file)["azd-service-name"] == "api"
