"""IAM across restarts: customer managed policies (the default version's document), roles
(trust policy, path, description, maximum session duration, permissions boundary, tags) with
their inline and attached policies, instance profiles and their roles, groups and users with
their inline and attached policies, tags and memberships; each with its id and creation date.

Read from and written to moto's IAM backend directly: through the API each call costs ~20 ms
(a few roles with their policies took over a second at every start and stop), and ids and
creation dates cannot be set. ``<root>/iam.json`` names things as AWS's answers do. An entity
that already exists is left as it is. Not kept: access keys, login profiles, MFA devices,
policy versions other than the default one, identity providers, the account's settings.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from moto.iam.exceptions import EntityAlreadyExists
from moto.iam.models import AWSManagedPolicy, IAMBackend, iam_backends

from ops.jsonfile import write_atomic

log = logging.getLogger("dogops.localcloud")
FILE = "iam.json"
KINDS = ("Policies", "Roles", "InstanceProfiles", "Groups", "Users")


def _time(value: datetime) -> str:
    return value.isoformat()  # UTC, as moto keeps it (naive)


def _policy(policy) -> dict:
    default = next(version for version in policy.versions if version.is_default)
    return {
        "PolicyName": policy.name,
        "PolicyId": policy.id,
        "Path": policy.path,
        "Description": policy.description,
        "DefaultVersion": {
            "VersionId": default.version_id,
            "Document": default.document,
            "CreateDate": _time(default.create_date),
        },
        "Tags": policy.get_tags(),
        "CreateDate": _time(policy.create_date),
        "UpdateDate": _time(policy.update_date),
    }


def _account(backend: IAMBackend) -> dict[str, list]:
    policies = [
        _policy(policy)
        for policy in backend.managed_policies.values()
        if not isinstance(policy, AWSManagedPolicy)
    ]
    roles = [
        {
            "RoleName": role.name,
            "RoleId": role.id,
            "Path": role.path,
            "AssumeRolePolicyDocument": role.assume_role_policy_document,
            "Description": role.description,
            "MaxSessionDuration": role.max_session_duration,
            "PermissionsBoundary": role.permissions_boundary_arn,
            "Tags": role.tags,
            "CreateDate": _time(role.create_date),
            "InlinePolicies": dict(role.policies),
            "AttachedPolicies": list(role.managed_policies),
        }
        for role in backend.roles.values()
    ]
    profiles = [
        {
            "InstanceProfileName": profile.name,
            "InstanceProfileId": profile.id,
            "Path": profile.path,
            "Roles": [role.name for role in profile.roles],
            "Tags": profile.tags,
            "CreateDate": _time(profile.create_date),
        }
        for profile in backend.instance_profiles.values()
    ]
    groups = [
        {
            "GroupName": group.name,
            "GroupId": group.id,
            "Path": group.path,
            "CreateDate": _time(group.create_date),
            "InlinePolicies": dict(group.policies),
            "AttachedPolicies": list(group.managed_policies),
            "Users": [user.name for user in group.users],
        }
        for group in backend.groups.values()
    ]
    users = [
        {
            "UserName": user.name,
            "UserId": user.id,
            "Path": user.path,
            "Tags": backend.list_user_tags(user.name),
            "CreateDate": _time(user.create_date),
            "InlinePolicies": dict(user.policies),
            "AttachedPolicies": list(user.managed_policies),
        }
        for user in backend.users.values()
    ]
    return dict(zip(KINDS, (policies, roles, profiles, groups, users), strict=True))


def snapshot(root: Path) -> int:
    """Write IAM (every account and partition that has entities) to ``root``; returns how
    many entities."""
    accounts = []
    for account, partition, backend in iam_backends.iter_backends():
        entities = _account(backend)
        if any(entities.values()):
            accounts.append({"Account": account, "Partition": partition, **entities})
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / FILE, {"Accounts": accounts})
    return sum(len(saved[kind]) for saved in accounts for kind in KINDS)


def restore(root: Path) -> int:
    """Put back what the last snapshot kept; returns how many entities were created."""
    try:
        saved = json.loads((root / FILE).read_text())
    except FileNotFoundError:
        return 0
    return sum(
        _restore_account(iam_backends[account["Account"]][account["Partition"]], account)
        for account in saved["Accounts"]
    )


def _restore_account(backend: IAMBackend, saved: dict) -> int:
    created = 0
    for policy in saved["Policies"]:
        default = policy["DefaultVersion"]
        record = _create(
            backend.create_policy,
            policy["Description"],
            policy["Path"],
            default["Document"],
            policy["PolicyName"],
            policy["Tags"],
        )
        if record is not None:
            _stamp(record, policy["PolicyId"], policy["CreateDate"])
            record.update_date = datetime.fromisoformat(policy["UpdateDate"])
            (version,) = record.versions
            version.version_id = record.default_version_id = default["VersionId"]
            version.create_date = datetime.fromisoformat(default["CreateDate"])
            record.next_version_num = int(default["VersionId"].lstrip("v")) + 1
            created += 1
    for role in saved["Roles"]:
        record = _create(
            backend.create_role,
            role["RoleName"],
            role["AssumeRolePolicyDocument"],
            role["Path"],
            role["PermissionsBoundary"],
            role["Description"],
            role["Tags"],
            role["MaxSessionDuration"],
        )
        if record is None:
            continue
        del backend.roles[record.id]  # moto keys roles by id
        _stamp(record, role["RoleId"], role["CreateDate"])
        backend.roles[record.id] = record
        _policies(backend, "role", role)
        created += 1
    for profile in saved["InstanceProfiles"]:
        name = profile["InstanceProfileName"]
        record = _create(
            backend.create_instance_profile, name, profile["Path"], [], profile["Tags"]
        )
        if record is None:
            continue
        _stamp(record, profile["InstanceProfileId"], profile["CreateDate"])
        for role in profile["Roles"]:
            _apply(backend.add_role_to_instance_profile, name, role)
        created += 1
    for group in saved["Groups"]:
        record = _create(backend.create_group, group["GroupName"], group["Path"])
        if record is None:
            continue
        _stamp(record, group["GroupId"], group["CreateDate"])
        _policies(backend, "group", group)
        created += 1
    for user in saved["Users"]:
        record = _create(
            backend.create_user, backend.region_name, user["UserName"], user["Path"], user["Tags"]
        )
        if record is None:
            continue
        _stamp(record, user["UserId"], user["CreateDate"])
        _policies(backend, "user", user)
        created += 1
    for group in saved["Groups"]:
        for user in group["Users"]:
            _apply(backend.add_user_to_group, group["GroupName"], user)
    return created


def _create(operation, *args):
    """The entity ``operation(*args)`` creates; None when one of that name already exists."""
    try:
        return operation(*args)
    except EntityAlreadyExists:
        return None


def _apply(operation, *args) -> None:
    """A part of an entity (a policy, a membership): what cannot be put back is reported."""
    try:
        operation(*args)
    except Exception as exc:
        log.error(
            "IAM %s%s: not restored (%s: %s)", operation.__name__, args, type(exc).__name__, exc
        )


def _policies(backend: IAMBackend, kind: str, saved: dict) -> None:
    """A role's, group's or user's inline and attached policies (``kind``: role, group, user)."""
    name = saved[f"{kind.capitalize()}Name"]
    for policy, document in saved["InlinePolicies"].items():
        _apply(getattr(backend, f"put_{kind}_policy"), name, policy, document)
    for arn in saved["AttachedPolicies"]:
        _apply(getattr(backend, f"attach_{kind}_policy"), arn, name)


def _stamp(record, entity_id: str, created: str) -> None:
    """The id and creation date the entity had."""
    record.id = entity_id
    record.create_date = datetime.fromisoformat(created)
