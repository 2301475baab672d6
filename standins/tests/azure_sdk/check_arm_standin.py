"""Drives the Windlass ARM stand-in with the official Azure SDK for Python.

Clients nobody here wrote (azure-identity, azure-mgmt-authorization, azure-mgmt-resource,
azure-mgmt-storage, with their own pipelines, pollers and error parsing) are a fair check
of the stand-in's protocol. Run by `standins/tests/azure_sdk.rs`, which starts the
stand-in, seeds the tenant and passes everything through the environment:

  STANDIN_URL, STANDIN_CA (PEM file), TENANT_ID, SUBSCRIPTION_ID,
  ADMIN_CLIENT_ID / ADMIN_ASSERTION (Owner of the subscription),
  WORKER_CLIENT_ID / WORKER_ASSERTION / WORKER_OBJECT_ID (no role yet).

Prints one JSON line of observations; exits non-zero on the first disagreement.
"""

import datetime
import json
import os
import sys
import time
import uuid

import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientAssertionCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import AccountSasParameters

ENV = os.environ
BASE = ENV["STANDIN_URL"]
CA = ENV["STANDIN_CA"]
TENANT = ENV["TENANT_ID"]
SUB = ENV["SUBSCRIPTION_ID"]
SCOPE = f"/subscriptions/{SUB}"
ARM_SCOPES = ["https://management.azure.com/.default"]
observed = {}


def credential(client_id, assertion):
    # The stand-in's host is not a known Entra authority: no instance discovery (MSAL
    # still reads the tenant's OpenID configuration from the stand-in).
    return ClientAssertionCredential(
        TENANT,
        client_id,
        lambda: assertion,
        authority=BASE,
        disable_instance_discovery=True,
        connection_verify=CA,
    )


def clients(cred):
    common = dict(base_url=BASE, credential_scopes=ARM_SCOPES, connection_verify=CA)
    return (
        ResourceManagementClient(cred, SUB, **common),
        AuthorizationManagementClient(cred, SUB, **common),
        StorageManagementClient(cred, SUB, **common),
    )


def expect_error(code, call):
    try:
        call()
    except HttpResponseError as e:
        got = e.error.code if e.error else None
        if got != code:
            raise AssertionError(f"expected {code}, the SDK parsed {got}: {e}") from e
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def until(what, call, accept, budget=30.0):
    """Retries `call` while it raises an HttpResponseError whose code is in `accept`;
    returns (result, codes seen)."""
    seen = []
    deadline = time.monotonic() + budget
    while True:
        try:
            return call(), seen
        except HttpResponseError as e:
            code = e.error.code if e.error else None
            if code not in accept or time.monotonic() > deadline:
                raise AssertionError(f"{what}: {code}: {e}") from e
            seen.append(code)
            time.sleep(0.25)


def main():
    admin = credential(ENV["ADMIN_CLIENT_ID"], ENV["ADMIN_ASSERTION"])
    resources, authorization, storage = clients(admin)

    # Providers: register, then read until Registered.
    provider = resources.providers.register("Microsoft.Storage")
    observed["provider_after_register"] = provider.registration_state
    for _ in range(100):
        if resources.providers.get("Microsoft.Storage").registration_state == "Registered":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("Microsoft.Storage never became Registered")

    # Resource groups.
    rg = resources.resource_groups.create_or_update(
        "rg-sdk", {"location": "westeurope", "tags": {"owner": "sdk-check"}}
    )
    assert rg.name == "rg-sdk" and rg.tags == {"owner": "sdk-check"}, rg
    assert resources.resource_groups.check_existence("rg-sdk") is True
    assert resources.resource_groups.check_existence("rg-none") is False
    expect_error("ResourceGroupNotFound", lambda: resources.resource_groups.get("rg-none"))

    # A custom role: replicates slowly, so reads and assignments miss it for a while.
    role_id = str(uuid.uuid4())
    role = authorization.role_definitions.create_or_update(
        SCOPE,
        role_id,
        {
            "role_name": "SDK check reader of storage",
            "description": "Made by the Azure SDK check",
            "role_type": "CustomRole",
            "permissions": [
                {
                    "actions": [
                        "Microsoft.Storage/storageAccounts/read",
                        "Microsoft.Resources/subscriptions/resourceGroups/read",
                    ],
                    "not_actions": [],
                }
            ],
            "assignable_scopes": [SCOPE],
        },
    )
    assert role.id.lower().endswith(role_id), role.id
    _, missed = until(
        "read the new role",
        lambda: authorization.role_definitions.get(SCOPE, role_id),
        {"RoleDefinitionDoesNotExist"},
    )
    observed["role_read_misses"] = len(missed)
    assignment_name = str(uuid.uuid4())
    assignment, refused = until(
        "assign the new role",
        lambda: authorization.role_assignments.create(
            SCOPE,
            assignment_name,
            {
                "role_definition_id": role.id,
                "principal_id": ENV["WORKER_OBJECT_ID"],
                "principal_type": "ServicePrincipal",
            },
        ),
        {"RoleDefinitionDoesNotExist"},
    )
    observed["assignment_refusals"] = refused
    assert assignment.principal_id == ENV["WORKER_OBJECT_ID"], assignment
    got = authorization.role_assignments.get(SCOPE, assignment_name)
    assert got.role_definition_id.lower() == role.id.lower(), got
    # The same triple under another name: ARM names the existing one.
    expect_error(
        "RoleAssignmentExists",
        lambda: authorization.role_assignments.create(
            SCOPE,
            str(uuid.uuid4()),
            {"role_definition_id": role.id, "principal_id": ENV["WORKER_OBJECT_ID"]},
        ),
    )
    # A role in use cannot be deleted.
    expect_error(
        "RoleDefinitionHasAssignments",
        lambda: authorization.role_definitions.delete(SCOPE, role_id),
    )

    # Storage accounts: the creation is a long-running operation the SDK's poller follows
    # (Location + Retry-After) on the stand-in's clock.
    account = "sdkcheck" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    poller = storage.storage_accounts.begin_create(
        "rg-sdk",
        account,
        {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_ZRS"}},
    )
    created = poller.result()
    observed["storage_create_seconds"] = round(time.monotonic() - started, 2)
    assert created.provisioning_state == "Succeeded", created.provisioning_state
    assert created.primary_endpoints.blob, created
    fetched = storage.storage_accounts.get_properties("rg-sdk", account)
    assert fetched.id.lower() == created.id.lower()

    sas = storage.storage_accounts.list_account_sas(
        "rg-sdk",
        account,
        AccountSasParameters(
            services="b",
            resource_types="sco",
            permissions="rwdlac",
            protocols="https,http",
            shared_access_expiry_time=datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(hours=1),
        ),
    ).account_sas_token
    # The SAS is what the Blob service (Azurite behind the stand-in) accepts.
    container = created.primary_endpoints.blob.rstrip("/") + "/sdk-check"
    made = requests.put(f"{container}?restype=container&{sas}", timeout=10)
    assert made.status_code == 201, (made.status_code, made.text)
    observed["sas_container_status"] = made.status_code

    # The worker's new assignment takes a while to authorise anything.
    worker = credential(ENV["WORKER_CLIENT_ID"], ENV["WORKER_ASSERTION"])
    _, _, worker_storage = clients(worker)
    _, refused = until(
        "read as the newly assigned worker",
        lambda: worker_storage.storage_accounts.get_properties("rg-sdk", account),
        {"AuthorizationFailed"},
    )
    observed["worker_refusals_before_propagation"] = len(refused)
    # Its role grants reads only: a write is refused for good.
    expect_error(
        "AuthorizationFailed",
        lambda: worker_storage.storage_accounts.begin_create(
            "rg-sdk",
            "sdkdenied" + uuid.uuid4().hex[:8],
            {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_ZRS"}},
        ),
    )

    # Failure modes the control API injects, as the SDK parses them.
    control = lambda path, body: requests.post(
        f"{BASE}/_standin/{path}", json=body, verify=CA, timeout=10
    ).raise_for_status()
    control("taken-storage-account-names", {"name": "sdktaken01"})
    expect_error(
        "StorageAccountAlreadyTaken",
        lambda: storage.storage_accounts.begin_create(
            "rg-sdk",
            "sdktaken01",
            {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_ZRS"}},
        ),
    )
    control(
        "deny-policies",
        {
            "scope": f"{SCOPE}/resourceGroups/rg-sdk",
            "assignment_name": "deny-zrs",
            "display_name": "Deny new storage accounts",
            "action": "Microsoft.Storage/storageAccounts/write",
        },
    )
    denied = expect_error(
        "RequestDisallowedByPolicy",
        lambda: storage.storage_accounts.begin_create(
            "rg-sdk",
            "sdkpolicy" + uuid.uuid4().hex[:6],
            {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_ZRS"}},
        ),
    )
    assert denied.status_code == 403
    observed["policy_message"] = denied.error.message
    # The SDK's retry policy retries any refusal that carries Retry-After, after it.
    control(
        "busy",
        {"method": "PUT", "path_contains": "/resourcegroups/rg-busy", "count": 1,
         "retry_after_secs": 2},
    )
    started = time.monotonic()
    resources.resource_groups.create_or_update("rg-busy", {"location": "westeurope"})
    observed["busy_retry_seconds"] = round(time.monotonic() - started, 2)
    assert observed["busy_retry_seconds"] >= 2, observed
    control(
        "locks",
        {"scope": f"{SCOPE}/resourceGroups/rg-sdk", "name": "keep", "level": "CanNotDelete"},
    )
    locked = expect_error(
        "ScopeLocked", lambda: resources.resource_groups.begin_delete("rg-sdk").result()
    )
    observed["lock_message"] = locked.error.message

    # Deleting a resource group: 202 + Location, polled to the end.
    resources.resource_groups.create_or_update("rg-gone", {"location": "westeurope"})
    resources.resource_groups.begin_delete("rg-gone").result()
    try:
        resources.resource_groups.get("rg-gone")
        raise AssertionError("rg-gone still exists after its delete finished")
    except ResourceNotFoundError:
        pass

    # Cleaning up the role: assignment first, then the definition.
    authorization.role_assignments.delete(SCOPE, assignment_name)
    authorization.role_definitions.delete(SCOPE, role_id)
    print(json.dumps(observed))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report anything the SDK disagreed on
        print(f"AZURE SDK CHECK FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        print(json.dumps(observed), file=sys.stderr)
        sys.exit(1)
