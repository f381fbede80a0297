"""The infra checkers catch what they guard: each test breaks a copy of the Bicep (or the code) the way
a careless edit would, and shows the checker then names the problem."""

from __future__ import annotations

from functions import settings as app_settings_module
from functions import storage
from tests.infra.contract import (
    Infra,
    always_ready_problems,
    flex_problems,
    identity_connection_problems,
    missing_names,
    missing_settings,
    role_problems,
    secret_problems,
    settings_read_by_code,
)
from tests.infra.test_infra_contract import ALLOWED_ROLES, SECRET_SETTINGS, infra, needed_roles

OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def test_removing_an_app_setting_from_bicep_is_reported():
    broken = Infra.load(replace={"main.bicep": ("      MAINTENANCE_SCHEDULE: maintenanceSchedule\n", "")})
    assert missing_settings(settings_read_by_code(), broken.app_settings(), storage.CONNECTION) == {"MAINTENANCE_SCHEDULE"}


def test_a_setting_newly_read_by_the_code_is_reported_until_bicep_declares_it(tmp_path):
    (tmp_path / "functions").mkdir()
    (tmp_path / "function_app.py").write_text("import os\n")
    (tmp_path / "functions" / "feature.py").write_text(
        "import os\nFLAG = 'FEATURE_FLAG'\n"
        "def enabled():\n    return os.environ.get(FLAG) == '1' or os.getenv('OTHER_FLAG') or 'THIRD' in os.environ\n"
    )
    read = settings_read_by_code(tmp_path)
    assert {"FEATURE_FLAG", "OTHER_FLAG", "THIRD"} <= read
    assert missing_settings(read, infra().app_settings(), storage.CONNECTION) == {"FEATURE_FLAG", "OTHER_FLAG", "THIRD"}


def test_removing_a_queue_from_bicep_is_reported():
    broken = Infra.load(replace={"main.bicep": ("  'sync-requests-poison' //", "  //")})
    queues = set(storage.Queues.ALL) | {storage.poison_queue(name) for name in storage.Queues.TRIGGERED}
    assert missing_names(queues, broken.resource_names("queueServices/queues")) == {"sync-requests-poison"}


def test_removing_a_table_or_the_files_container_is_reported():
    broken = Infra.load(replace={"main.bicep": ("  'faileditems'\n", "")})
    assert missing_names(set(storage.Tables.ALL), broken.resource_names("tableServices/tables")) == {"faileditems"}
    broken = Infra.load(replace={"main.bicep": ("      filesContainerName\n      deploymentContainerName", "      deploymentContainerName")})
    required = {app_settings_module.DEFAULTS["FILES_CONTAINER"]}
    assert missing_names(required, broken.resource_names("blobServices/containers")) == required


def test_removing_a_role_assignment_is_reported():
    broken = infra().copy()
    del broken.files["app/rbac.bicep"]["resources"]["tableData"]
    problems = role_problems(broken.role_assignments(), ALLOWED_ROLES, needed_roles(broken.app_settings()))
    assert problems == ["role Storage Table Data Contributor (0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3) is needed and not granted"]


def test_a_broader_role_or_a_role_at_group_scope_is_reported():
    broken = Infra.load(replace={"app/rbac.bicep": ("'0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'", f"'{OWNER_ROLE_ID}'")})
    problems = role_problems(broken.role_assignments(), ALLOWED_ROLES, needed_roles(broken.app_settings()))
    assert any(OWNER_ROLE_ID in p and "not on the allow-list" in p for p in problems), problems
    broken = infra().copy()
    del broken.files["app/rbac.bicep"]["resources"]["secretsUser"]["config"]["scope"]
    problems = role_problems(broken.role_assignments(), ALLOWED_ROLES, needed_roles(broken.app_settings()))
    assert problems == ["app/rbac.bicep:secretsUser grants Key Vault Secrets User at the deployment scope, not on a Microsoft.KeyVault/vaults"]


def test_a_setting_flex_rejects_is_reported():
    broken = Infra.load(replace={"app/api.bicep": (
        "      AzureWebJobsStorage__credential: 'managedidentity'\n",
        "      AzureWebJobsStorage__credential: 'managedidentity'\n      FUNCTIONS_WORKER_RUNTIME: 'python'\n")})
    assert flex_problems(broken) == ["app setting FUNCTIONS_WORKER_RUNTIME is rejected by Flex Consumption"]
    broken = Infra.load(replace={"app/api.bicep": ("      minTlsVersion: '1.2'\n", "      minTlsVersion: '1.2'\n      linuxFxVersion: 'Python|3.11'\n")})
    assert flex_problems(broken) == ["app/api.bicep:functionApp sets linuxFxVersion, which Flex Consumption rejects"]


def test_a_key_based_or_incomplete_storage_connection_is_reported():
    broken = Infra.load(replace={"app/api.bicep": ("      AzureWebJobsStorage__clientId: identityClientId\n", "")})
    assert identity_connection_problems(broken.app_settings(), storage.CONNECTION) == [
        "AzureWebJobsStorage__clientId must name the user-assigned identity"]
    broken = Infra.load(replace={"app/api.bicep": ("      AzureWebJobsStorage__accountName: storage.name\n", "")})
    assert missing_settings(settings_read_by_code(), broken.app_settings(), storage.CONNECTION) == {storage.CONNECTION}


def test_a_secret_in_a_plain_setting_is_reported():
    broken = Infra.load(replace={"app/api.bicep": (
        "TOKEN_ENCRYPTION_KEYS: '@Microsoft.KeyVault(SecretUri=${tokenKeyRingUri})'", "TOKEN_ENCRYPTION_KEYS: tokenKeyRingUri")})
    assert secret_problems(broken.app_settings(), SECRET_SETTINGS) == [
        "TOKEN_ENCRYPTION_KEYS must be a Key Vault reference, got 'keyVault.outputs.tokenKeyRingUri'"]


def test_an_http_group_without_an_always_ready_instance_is_reported():
    broken = Infra.load(replace={"app/api.bicep": ("            name: 'http'\n", "            name: 'function:maintenance'\n")})
    assert always_ready_problems(broken, {"httpTrigger"}) == [
        "app/api.bicep:functionApp keeps no always-ready instance for the http group (got None)"]
    none = Infra.load(replace={"main.bicep": ("param httpAlwaysReadyInstances int = 1", "param httpAlwaysReadyInstances int = 0")})
    assert always_ready_problems(none, {"httpTrigger"}) == [
        "app/api.bicep:functionApp keeps no always-ready instance for the http group (got 0)"]
    assert always_ready_problems(broken, {"queueTrigger"}) == []
