"""Static checks of terraform/: parsed with python-hcl2, no AWS and no provider download needed.

The last two tests run the terraform binary (fmt, init + validate) when it is on PATH.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
MODULES = TF / "modules"
ROOT = TF / "envs" / "dev"
MODULE_NAMES = ["storage", "iam", "lambda_function", "training_host", "endpoint_autoscaling"]


def dir_id(path: Path) -> str:
    return str(path.relative_to(TF))


TF_FILES = sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)

# python-hcl2 8.x keeps quotes and adds __is_block__ markers by default; this is the classic shape.
OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def module_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tf"))


def blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Labelled blocks of one kind ("variable", "output", "module") in a directory, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in module_files(directory):
        for entry in parse(path).get(kind, []):
            for name, body in entry.items():
                assert name not in found, f"{kind} {name} declared twice in {directory}"
                found[name] = body
    return found


def typed_blocks(directory: Path, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Resources or data sources in a directory, keyed by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in module_files(directory):
        for entry in parse(path).get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found[(rtype, name)] = body
    return found


def resource(module: str, rtype: str, name: str = "this") -> dict[str, Any]:
    resources = typed_blocks(MODULES / module, "resource")
    assert (rtype, name) in resources, f"{module}: no resource {rtype}.{name}"
    return resources[(rtype, name)]


def data_source(module: str, dtype: str, name: str = "this") -> dict[str, Any]:
    sources = typed_blocks(MODULES / module, "data")
    assert (dtype, name) in sources, f"{module}: no data source {dtype}.{name}"
    return sources[(dtype, name)]


def locals_of(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in module_files(directory):
        for entry in parse(path).get("locals", []):
            merged.update(entry)
    return merged


def resolve(value: Any, local_values: dict[str, Any]) -> Any:
    """Replace a bare "${local.x}" reference by the local's value, and string locals embedded
    in a string ("${local.arn}:log-stream:*") by their text."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\$\{local\.(\w+)\}", value)
    if match:
        return resolve(local_values[match.group(1)], local_values)

    def text(m: re.Match[str]) -> str:
        local = local_values[m.group(1)]
        return local if isinstance(local, str) and not local.startswith("${[") else m.group(0)

    for _ in range(3):  # locals built from locals
        value = re.sub(r"\$\{local\.(\w+)\}", text, value)
    return value


def single(block_list: Any) -> dict[str, Any]:
    assert isinstance(block_list, list), block_list
    assert len(block_list) == 1, block_list
    return block_list[0]


def walk(node: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair in a parsed file, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def statements(module: str, name: str) -> list[dict[str, Any]]:
    return data_source(module, "aws_iam_policy_document", name)["statement"]


# ------------------------------------------------------------------------------------------------
# Layout and conventions
# ------------------------------------------------------------------------------------------------


def test_every_tf_file_parses() -> None:
    assert len(TF_FILES) >= 25, TF_FILES
    for path in [*TF_FILES, ROOT / "terraform.tfvars"]:
        parsed = parse(path)
        assert parsed, f"{path} parsed to nothing"


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_layout(name: str) -> None:
    directory = MODULES / name
    for filename in ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]:
        assert (directory / filename).is_file(), f"{name}/{filename} missing"
    assert not (directory / ".terraform.lock.hcl").exists(), "modules carry no lock file"
    readme = (directory / "README.md").read_text(encoding="utf-8")
    assert "## Usage" in readme and "## Inputs" in readme and "## Outputs" in readme


def readme_rows(readme: str, kind: str) -> dict[str, list[str]]:
    """terraform-docs table rows of one kind ("input", "output") by name: the cells after the
    name cell."""
    rows = {}
    for line in readme.splitlines():
        match = re.match(rf'\| <a name="{kind}_(\w+)"></a> \[[^]]+\]\([^)]+\) \| (.*) \|$', line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
    return rows


def readme_text(description: str) -> str:
    return description.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_readme_tables_match_the_code(name: str) -> None:
    """The inputs/outputs/resources tables list exactly what the module declares, with the
    descriptions and required flags of the code (no stale or missing rows)."""
    directory = MODULES / name
    readme = (directory / "README.md").read_text(encoding="utf-8")
    variables = blocks(directory, "variable")
    inputs = readme_rows(readme, "input")
    assert set(inputs) == set(variables), set(inputs) ^ set(variables)
    for var, body in variables.items():
        description, _type, _default, required = inputs[var]
        assert description == readme_text(body["description"]), (name, var)
        assert required == ("no" if "default" in body else "yes"), (name, var)
    outputs = blocks(directory, "output")
    documented = readme_rows(readme, "output")
    assert set(documented) == set(outputs), set(documented) ^ set(outputs)
    for out, body in outputs.items():
        assert documented[out] == [readme_text(body["description"])], (name, out)
    declared = {f"{t}.{n}" for t, n in typed_blocks(directory, "resource")}
    declared |= {f"data.{t}.{n}" for t, n in typed_blocks(directory, "data")}
    listed = set(re.findall(r"^\| \[([\w.]+)\]\(https://registry", readme, flags=re.M))
    assert listed == declared, listed ^ declared


@pytest.mark.parametrize("directory", [*(MODULES / n for n in MODULE_NAMES), ROOT], ids=dir_id)
def test_every_variable_has_type_and_description(directory: Path) -> None:
    variables = blocks(directory, "variable")
    assert variables
    for name, body in variables.items():
        assert body.get("type"), f"{directory.name}: variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"


@pytest.mark.parametrize("directory", [*(MODULES / n for n in MODULE_NAMES), ROOT], ids=dir_id)
def test_every_output_has_description(directory: Path) -> None:
    outputs = blocks(directory, "output")
    assert outputs
    for name, body in outputs.items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_main_resource_is_this_and_outputs_are_prefixed(name: str) -> None:
    directory = MODULES / name
    if name != "iam":  # four roles of equal rank, named by purpose
        assert any(rname == "this" for _, rname in typed_blocks(directory, "resource"))
    prefixes = {
        "storage": ("s3_bucket_", "kms_key_"),
        "iam": (
            "sagemaker_training_role_",
            "sagemaker_endpoint_role_",
            "lambda_role_",
            "training_host_",
            "invoke_endpoint_",
        ),
        "lambda_function": ("lambda_function_", "lambda_alias_", "lambda_"),
        "training_host": ("instance_", "ami_", "security_group_"),
        "endpoint_autoscaling": ("appautoscaling_target_", "appautoscaling_policy_"),
    }[name]
    for out in blocks(directory, "output"):
        assert out.startswith(prefixes), f"{name}: output {out} lacks a resource prefix"


def required_providers(directory: Path) -> tuple[str, dict[str, dict[str, str]]]:
    terraform = single(parse(directory / "versions.tf")["terraform"])
    return terraform["required_version"], single(terraform["required_providers"])


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_provider_floors(name: str) -> None:
    version, providers = required_providers(MODULES / name)
    assert version == ">= 1.6"
    assert providers["aws"] == {"source": "hashicorp/aws", "version": ">= 6.0"}
    for provider in providers.values():
        assert provider["version"].startswith(">="), provider


def test_root_pins_exact_versions() -> None:
    version, providers = required_providers(ROOT)
    assert version == ">= 1.6"
    assert providers == {
        "aws": {"source": "hashicorp/aws", "version": "= 6.20.0"},
        "archive": {"source": "hashicorp/archive", "version": "= 2.7.1"},
    }


def test_checkov_skips_are_inline_and_justified() -> None:
    skips = []
    for path in TF_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                match = re.search(r"#\s*checkov:skip=(CKV2?_AWS_\d+):(.+)$", line)
                assert match, f"{path}: malformed skip {line!r}"
                assert len(match.group(2).split()) >= 6, f"{path}: skip without reason {line!r}"
                skips.append(match.group(1))
    assert skips, "expected the documented skips (S3 logging, Lambda VPC, ...)"


# ------------------------------------------------------------------------------------------------
# tfvars: the single source of truth, and the root only wires it through
# ------------------------------------------------------------------------------------------------

MISSION = {
    "reserved_concurrency": 100,
    "provisioned_concurrency": 3,
    "max_capacity": 4,
    "min_capacity": 1,
    "scale_in_cooldown": 30,
    "scale_out_cooldown": 300,
    "endpoint_name": "dog-breed-classifier",
    "variant_name": "AllTraffic",
    "lambda_alias_name": "live",
    "training_instance_type": "m5.2xlarge",
}


def test_tfvars_hold_the_mission_numbers() -> None:
    tfvars = parse(ROOT / "terraform.tfvars")
    for key, expected in MISSION.items():
        assert tfvars.get(key) == expected, (key, tfvars.get(key))
    assert tfvars["target_invocations_per_instance"] > 0
    for key in ["region", "lambda_function_name", "bucket_name_prefix"]:
        assert isinstance(tfvars.get(key), str) and tfvars[key], key


def test_mission_variables_have_no_default_in_root() -> None:
    variables = blocks(ROOT, "variable")
    tfvars = parse(ROOT / "terraform.tfvars")
    for key in [*MISSION, "target_invocations_per_instance", "region", "lambda_function_name"]:
        assert key in variables, key
        assert "default" not in variables[key], f"{key}: its value belongs in terraform.tfvars"
    assert set(tfvars) <= set(variables), set(tfvars) - set(variables)


def test_root_main_only_wires_variables_and_module_outputs() -> None:
    parsed = parse(ROOT / "main.tf")
    assert set(parsed) == {"module"}, f"root main.tf holds more than module blocks: {set(parsed)}"
    modules = blocks(ROOT, "module")
    assert set(modules) == set(MODULE_NAMES)
    for name, body in modules.items():
        assert body["source"] == f"../../modules/{name}"
        for key, value in body.items():
            if key == "source":
                continue
            assert isinstance(value, str) and value.startswith("${"), (
                f"module {name}: {key} = {value!r} is a literal, not a variable or module output"
            )
    wiring = {
        ("lambda_function", "reserved_concurrency"): "${var.reserved_concurrency}",
        ("lambda_function", "provisioned_concurrency"): "${var.provisioned_concurrency}",
        ("lambda_function", "alias_name"): "${var.lambda_alias_name}",
        ("lambda_function", "endpoint_name"): "${var.endpoint_name}",
        ("lambda_function", "role_arn"): "${module.iam.lambda_role_arn}",
        ("iam", "endpoint_name"): "${var.endpoint_name}",
        ("iam", "bucket_arn"): "${module.storage.s3_bucket_arn}",
        ("endpoint_autoscaling", "endpoint_name"): "${var.endpoint_name}",
        ("endpoint_autoscaling", "variant_name"): "${var.variant_name}",
        ("endpoint_autoscaling", "min_capacity"): "${var.min_capacity}",
        ("endpoint_autoscaling", "max_capacity"): "${var.max_capacity}",
        ("endpoint_autoscaling", "scale_in_cooldown"): "${var.scale_in_cooldown}",
        ("endpoint_autoscaling", "scale_out_cooldown"): "${var.scale_out_cooldown}",
        (
            "endpoint_autoscaling",
            "target_invocations_per_instance",
        ): "${var.target_invocations_per_instance}",
        ("training_host", "instance_type"): "${var.training_instance_type}",
    }
    for (module, key), expected in wiring.items():
        assert modules[module].get(key) == expected, (module, key, modules[module].get(key))
    assert modules["endpoint_autoscaling"]["count"] == "${var.enable_endpoint_autoscaling ? 1 : 0}"
    assert not re.search(r"=\s*-?\d", (ROOT / "main.tf").read_text(encoding="utf-8"))


def test_root_outputs_for_ops() -> None:
    outputs = blocks(ROOT, "output")
    for name in [
        "s3_bucket_name",
        "sagemaker_role_arn",
        "sagemaker_training_role_arn",
        "sagemaker_endpoint_role_arn",
        "lambda_function_name",
        "lambda_alias_name",
        "endpoint_name",
        "training_host_instance_id",
        "training_host_install_dir",
        "training_host_venv_dir",
        "region",
    ]:
        assert name in outputs, name


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_readme_lists_its_checkov_skips(name: str) -> None:
    directory = MODULES / name
    skipped = set()
    for path in module_files(directory):
        skipped |= set(
            re.findall(r"checkov:skip=(CKV2?_AWS_\d+)", path.read_text(encoding="utf-8"))
        )
    readme = (directory / "README.md").read_text(encoding="utf-8")
    listed = set()
    for prefix, numbers in re.findall(r"(CKV2?_AWS_)(\d+(?:/\d+)*)", readme):
        listed |= {prefix + number for number in numbers.split("/")}
    assert skipped <= listed, skipped - listed


def test_root_readme_lists_exactly_the_root_outputs() -> None:
    readme = (TF / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Outputs consumed by ops") :]
    section = section[: section.index("\n## ", 1)]
    listed = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    listed |= set(re.findall(r"`(\w+)`", section.split("Also available:")[1]))
    assert listed == set(blocks(ROOT, "output")), listed ^ set(blocks(ROOT, "output"))


# ------------------------------------------------------------------------------------------------
# IAM: no wildcard action in any Allow, least privilege per role
# ------------------------------------------------------------------------------------------------

IAM_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")
WILDCARD_ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9]*[*?][A-Za-z0-9*?]*|\*")
ALL_DIRS = [*(MODULES / n for n in MODULE_NAMES), ROOT]
BUCKET = "${var.bucket_arn}"
# What the iam module's partition/region/account locals resolve to.
ARN_HEAD = {
    service: f"arn:${{data.aws_partition.current.partition}}:{service}"
    ":${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}"
    for service in ("logs", "sagemaker", "lambda")
}


def expand(value: Any, directory: Path) -> list[str]:
    """A policy value as a list of strings: locals resolved, and the `[for p in var.x : "..."]`
    locals of the iam module evaluated against the variable's default (the root overrides none
    of them, see test_root_keeps_iam_prefix_defaults)."""
    value = resolve(value, locals_of(directory))
    if isinstance(value, list):
        return [item for v in value for item in expand(v, directory)]
    match = re.fullmatch(r'\$\{\[for (\w+) in var\.(\w+) : "(.*)"\]\}', value)
    if match:
        name, variable, template = match.groups()
        default = blocks(directory, "variable")[variable]["default"]
        return [template.replace("${" + name + "}", item) for item in default]
    return [value]


def policy_documents(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for (dtype, name), body in typed_blocks(directory, "data").items()
        if dtype == "aws_iam_policy_document"
    }


def effective_statements(directory: Path, name: str) -> list[dict[str, Any]]:
    """Statements of a policy document including those merged in from source_policy_documents."""
    document = policy_documents(directory)[name]
    merged: list[dict[str, Any]] = []
    for source in document.get("source_policy_documents", []):
        match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", source)
        assert match, f"{name}: source document {source!r} is not a policy document of the module"
        merged += effective_statements(directory, match.group(1))
    return merged + document.get("statement", [])


def actions_of(statement: dict[str, Any], directory: Path) -> list[str]:
    return expand(statement["actions"], directory)


def test_no_wildcard_action_in_any_allow() -> None:
    allowed = 0
    denied_wildcards: set[str] = set()
    for directory in ALL_DIRS:
        for name, document in policy_documents(directory).items():
            for stmt in document.get("statement", []):
                where = f"{dir_id(directory)}: {name} {stmt.get('sid', '')}"
                assert "not_actions" not in stmt, f"{where}: NotAction grants everything else"
                actions = actions_of(stmt, directory)
                assert actions, where
                for action in actions:
                    assert IAM_ACTION.match(action) or action == "*", (where, action)
                if stmt.get("effect", "Allow") == "Allow":
                    allowed += len(actions)
                    for action in actions:
                        assert "*" not in action and "?" not in action, f"{where}: Allow {action}"
                else:
                    assert stmt["effect"] == "Deny", where
                    denied_wildcards |= {a for a in actions if "*" in a or "?" in a}
    assert allowed >= 40, allowed
    # Belt and braces: any action-like wildcard string in any file (a local, a jsonencode()d
    # policy, an attachment) must be one a Deny statement names.
    for path in TF_FILES:
        for key, value in walk(parse(path)):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and WILDCARD_ACTION.fullmatch(item) and item != "*":
                    assert item in denied_wildcards, f"{path}: {key} holds wildcard action {item}"


def test_roles_get_policies_only_from_checked_documents() -> None:
    """No AWS managed policy (AmazonSSMManagedInstanceCore and its ssm:GetParameter* on "*")
    and no hand-written JSON: every role policy is a policy document the tests above read."""
    for directory in ALL_DIRS:
        for (rtype, name), body in typed_blocks(directory, "resource").items():
            assert rtype not in (
                "aws_iam_role_policy_attachment",
                "aws_iam_policy_attachment",
                "aws_iam_policy",
            ), f"{dir_id(directory)}: {rtype}.{name}"
            if rtype == "aws_iam_role":
                assert "managed_policy_arns" not in body and "inline_policy" not in body, name
            if rtype == "aws_iam_role_policy":
                assert re.fullmatch(
                    r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", body["policy"]
                ), f"{dir_id(directory)}: {name} policy is not a policy document"


def role_policy_documents(role: str) -> list[str]:
    """Names of the policy documents attached to an iam module role, in attachment order."""
    found = []
    for (rtype, _), body in sorted(typed_blocks(MODULES / "iam", "resource").items()):
        if rtype == "aws_iam_role_policy" and body["role"] == f"${{aws_iam_role.{role}.id}}":
            match = re.fullmatch(
                r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", body["policy"]
            )
            assert match, body
            found.append(match.group(1))
    return found


def grants(document: str) -> dict[str, set[str]]:
    """Action -> resources (and s3:prefix values for s3:ListBucket) of an iam module document."""
    iam = MODULES / "iam"
    result: dict[str, set[str]] = {}
    for stmt in effective_statements(iam, document):
        assert stmt.get("effect", "Allow") == "Allow", (document, stmt)
        resources = set(expand(stmt["resources"], iam))
        for condition in stmt.get("condition", []):
            if condition["variable"] == "s3:prefix":
                resources |= {f"prefix:{v}" for v in expand(condition["values"], iam)}
        for action in actions_of(stmt, iam):
            result.setdefault(action, set()).update(resources)
    return result


def bucket_prefixes(resources: set[str]) -> set[str]:
    prefixes = set()
    for resource_arn in resources:
        if resource_arn.startswith(f"{BUCKET}/"):
            assert resource_arn.endswith("/*"), resource_arn
            prefixes.add(resource_arn.removeprefix(f"{BUCKET}/").removesuffix("*"))
        else:
            assert resource_arn == BUCKET or resource_arn.startswith("prefix:"), resource_arn
    return prefixes


def test_root_keeps_iam_prefix_defaults() -> None:
    """The prefix tests below read the iam module's defaults; the root must not override them."""
    iam = blocks(ROOT, "module")["iam"]
    for variable in ["training_read_prefixes", "training_write_prefixes", "endpoint_read_prefixes"]:
        assert variable not in iam, variable
        assert variable in blocks(MODULES / "iam", "variable"), variable


def test_sagemaker_training_and_endpoint_roles_are_separate() -> None:
    training = resource("iam", "aws_iam_role", "sagemaker_training")
    endpoint = resource("iam", "aws_iam_role", "sagemaker_endpoint")
    assert training["name"] != endpoint["name"]
    assert role_policy_documents("sagemaker_training") == ["sagemaker_training"]
    assert role_policy_documents("sagemaker_endpoint") == ["sagemaker_endpoint"]
    # The root hands ops the training role under its old name and both under explicit names.
    outputs = blocks(ROOT, "output")
    assert outputs["sagemaker_role_arn"]["value"] == "${module.iam.sagemaker_training_role_arn}"
    assert outputs["sagemaker_training_role_arn"]["value"] == (
        "${module.iam.sagemaker_training_role_arn}"
    )
    assert outputs["sagemaker_endpoint_role_arn"]["value"] == (
        "${module.iam.sagemaker_endpoint_role_arn}"
    )
    iam_outputs = blocks(MODULES / "iam", "output")
    assert iam_outputs["sagemaker_training_role_arn"]["value"] == (
        "${aws_iam_role.sagemaker_training.arn}"
    )
    assert iam_outputs["sagemaker_endpoint_role_arn"]["value"] == (
        "${aws_iam_role.sagemaker_endpoint.arn}"
    )


def test_endpoint_role_only_reads_models() -> None:
    granted = grants("sagemaker_endpoint")
    s3 = {a: r for a, r in granted.items() if a.startswith("s3:")}
    assert set(s3) == {"s3:GetObject"}, s3
    assert bucket_prefixes(s3["s3:GetObject"]) == {"models/"}
    assert {a for a in granted if a.startswith("kms:")} == {"kms:Decrypt"}
    logs = {r for a, r in granted.items() if a.startswith("logs:") for r in r}
    assert logs == {
        ARN_HEAD["logs"] + ":log-group:/aws/sagemaker/Endpoints/${var.endpoint_name}",
        ARN_HEAD["logs"] + ":log-group:/aws/sagemaker/Endpoints/${var.endpoint_name}:log-stream:*",
    }
    repositories = granted["ecr:BatchGetImage"]
    assert repositories and all(r.endswith(":repository/pytorch-inference") for r in repositories)


def test_training_role_reads_inputs_and_writes_models_and_checkpoints() -> None:
    granted = grants("sagemaker_training")
    s3 = {a: r for a, r in granted.items() if a.startswith("s3:")}
    assert set(s3) == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}, s3
    assert bucket_prefixes(s3["s3:GetObject"]) == {"data/", "code/", "checkpoints/"}
    assert bucket_prefixes(s3["s3:PutObject"]) == {"models/", "checkpoints/"}
    assert s3["s3:ListBucket"] == {BUCKET, "prefix:data/*", "prefix:code/*", "prefix:checkpoints/*"}
    assert {a for a in granted if a.startswith("kms:")} == {"kms:Decrypt", "kms:GenerateDataKey"}
    logs = {r for a, r in granted.items() if a.startswith("logs:") for r in r}
    assert logs == {
        ARN_HEAD["logs"] + ":log-group:/aws/sagemaker/TrainingJobs",
        ARN_HEAD["logs"] + ":log-group:/aws/sagemaker/TrainingJobs:log-stream:*",
    }
    repositories = granted["ecr:BatchGetImage"]
    assert repositories and all(r.endswith(":repository/pytorch-training") for r in repositories)


def test_resource_star_only_where_aws_allows_nothing_narrower() -> None:
    # No resource-level permissions in AWS for these (nor for any ssmmessages/ec2messages one).
    unscoped = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
    iam = MODULES / "iam"
    for name in policy_documents(iam):
        for stmt in policy_documents(iam)[name].get("statement", []):
            if "*" not in expand(stmt.get("resources", []), iam):
                continue
            for action in actions_of(stmt, iam):
                service = action.split(":")[0]
                assert action in unscoped or service in ("ssmmessages", "ec2messages"), (
                    name,
                    action,
                )
            if "cloudwatch:PutMetricData" in stmt["actions"]:
                condition = single(stmt["condition"])
                assert condition["test"] == "StringEquals"
                assert condition["variable"] == "cloudwatch:namespace"
                assert len(condition["values"]) == 1
                assert condition["values"][0].startswith("/aws/sagemaker/")


def test_lambda_role_only_invokes_its_endpoint_and_writes_its_logs() -> None:
    assert role_policy_documents("lambda") == ["lambda"]
    granted = grants("lambda")
    assert granted == {
        "sagemaker:InvokeEndpoint": {
            ARN_HEAD["sagemaker"] + ":endpoint/${lower(var.endpoint_name)}"
        },
        "logs:CreateLogStream": {
            ARN_HEAD["logs"] + ":log-group:/aws/lambda/${var.lambda_function_name}:log-stream:*"
        },
        "logs:PutLogEvents": {
            ARN_HEAD["logs"] + ":log-group:/aws/lambda/${var.lambda_function_name}:log-stream:*"
        },
    }


# The agent's calls for Run Command and Session Manager, from AWS's Systems Manager user guide
# (minimal Session Manager instance profile; the ec2messages/ssmmessages API reference).
SSM_AGENT_ACTIONS = {
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
}


def test_training_host_gets_a_custom_ssm_policy_without_parameter_reads() -> None:
    assert set(role_policy_documents("training_host")) == {
        "training_bucket_access",
        "training_host_ssm",
    }
    ssm = grants("training_host_ssm")
    assert set(ssm) == SSM_AGENT_ACTIONS, set(ssm) ^ SSM_AGENT_ACTIONS
    # The agent's ssm: calls name an instance: only this account's, in this region.
    for action in ["ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations"]:
        assert ssm[action] == {
            "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.region}"
            ":${data.aws_caller_identity.current.account_id}:instance/*"
        }, action
    # Nowhere in the repository may a role read SSM parameters (or anything of ssm: beyond the
    # agent's registration calls).
    for directory in ALL_DIRS:
        for name, document in policy_documents(directory).items():
            for stmt in document.get("statement", []):
                for action in actions_of(stmt, directory):
                    assert not action.startswith("ssm:GetParameter"), (name, action)
                    if action.startswith("ssm:"):
                        assert action in SSM_AGENT_ACTIONS, (name, action)
    # The host trains like a SageMaker job: same bucket grants, nothing of the endpoint's.
    host = grants("training_bucket_access")
    assert host == {a: r for a, r in grants("sagemaker_training").items() if a in host}
    assert resource("iam", "aws_iam_instance_profile", "training_host")["role"] == (
        "${aws_iam_role.training_host.name}"
    )


def trust_statement(role: str) -> dict[str, Any]:
    body = resource("iam", "aws_iam_role", role)
    match = re.fullmatch(
        r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", body["assume_role_policy"]
    )
    assert match, body["assume_role_policy"]
    return single(statements("iam", match.group(1)))


def test_service_trust_policies_carry_confused_deputy_conditions() -> None:
    iam = MODULES / "iam"
    source_arns = {
        "sagemaker.amazonaws.com": [ARN_HEAD["sagemaker"] + ":*"],
        "lambda.amazonaws.com": [
            ARN_HEAD["lambda"] + ":function:${var.lambda_function_name}",
            ARN_HEAD["lambda"] + ":function:${var.lambda_function_name}:*",
        ],
    }
    roles = [name for rtype, name in typed_blocks(iam, "resource") if rtype == "aws_iam_role"]
    assert sorted(roles) == [
        "lambda",
        "sagemaker_endpoint",
        "sagemaker_training",
        "training_host",
    ]
    for role in roles:
        stmt = trust_statement(role)
        assert stmt["actions"] == ["sts:AssumeRole"]
        principal = single(stmt["principals"])
        assert principal["type"] == "Service"
        service = single(principal["identifiers"]) if len(principal["identifiers"]) == 1 else None
        assert service, f"{role}: one service per trust policy"
        conditions = {c["variable"]: c for c in stmt.get("condition", [])}
        if service == "ec2.amazonaws.com":
            # EC2 sets neither key for an instance profile's role (justified in training_host.tf).
            assert not conditions, role
            continue
        assert set(conditions) == {"aws:SourceAccount", "aws:SourceArn"}, role
        account = conditions["aws:SourceAccount"]
        assert account["test"] == "StringEquals"
        assert account["values"] == ["${local.account_id}"]
        arn = conditions["aws:SourceArn"]
        assert arn["test"] == "ArnLike"
        assert expand(arn["values"], iam) == source_arns[service], role


# ------------------------------------------------------------------------------------------------
# Storage
# ------------------------------------------------------------------------------------------------


def test_bucket_blocks_public_access_encrypts_and_versions() -> None:
    pab = resource("storage", "aws_s3_bucket_public_access_block")
    for key in [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ]:
        assert pab[key] is True, key
    sse = single(
        single(resource("storage", "aws_s3_bucket_server_side_encryption_configuration")["rule"])[
            "apply_server_side_encryption_by_default"
        ]
    )
    assert sse["sse_algorithm"] in ("aws:kms", "AES256")
    versioning = resource("storage", "aws_s3_bucket_versioning")
    assert single(versioning["versioning_configuration"])["status"] == "Enabled"
    assert resource("storage", "aws_kms_key")["enable_key_rotation"] is True


def test_bucket_policy_is_tls_only() -> None:
    policy = resource("storage", "aws_s3_bucket_policy")
    assert policy["policy"] == "${data.aws_iam_policy_document.bucket.json}"
    deny = single(statements("storage", "bucket"))
    assert deny["effect"] == "Deny"
    # Exhaustive: every S3 action, on the bucket and on every object in it, for everyone.
    assert deny["actions"] == ["s3:*"]
    assert set(deny["resources"]) == {
        "${aws_s3_bucket.this.arn}",
        "${aws_s3_bucket.this.arn}/*",
    }
    assert single(deny["principals"]) == {"type": "*", "identifiers": ["*"]}
    cond = single(deny["condition"])
    assert cond == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}


def test_bucket_lifecycle_expires_old_versions_and_aborts_uploads() -> None:
    rules = resource("storage", "aws_s3_bucket_lifecycle_configuration")["rule"]
    assert all(r["status"] == "Enabled" for r in rules)
    assert any("noncurrent_version_expiration" in r for r in rules)
    assert all("abort_incomplete_multipart_upload" in r for r in rules)
    prefixed = [r for r in rules if "expiration" in r]
    assert single(prefixed)["filter"] == [{"prefix": "${var.artifact_expiration_prefix}"}]


# ------------------------------------------------------------------------------------------------
# Lambda
# ------------------------------------------------------------------------------------------------


def test_lambda_concurrency_is_wired_to_variables() -> None:
    fn = resource("lambda_function", "aws_lambda_function")
    assert fn["publish"] is True
    assert fn["reserved_concurrent_executions"] == "${var.reserved_concurrency}"
    assert fn["handler"] == "${var.handler}"
    assert fn["runtime"] == "${var.runtime}"
    variables = blocks(MODULES / "lambda_function", "variable")
    assert variables["handler"]["default"] == "handler.handler"
    assert variables["runtime"]["default"] == "python3.12"
    assert variables["log_retention_in_days"]["default"] == 365
    assert "ENDPOINT_NAME = var.endpoint_name" in single(fn["environment"])["variables"]
    assert single(fn["tracing_config"])["mode"] == "${var.tracing_mode}"
    assert fn["source_code_hash"] == "${data.archive_file.this.output_base64sha256}"
    assert fn["depends_on"] == ["${aws_cloudwatch_log_group.this}"]

    alias = resource("lambda_function", "aws_lambda_alias")
    assert alias["function_version"] == "${aws_lambda_function.this.version}"
    assert alias["name"] == "${var.alias_name}"
    assert "routing_config" not in alias

    pc = resource("lambda_function", "aws_lambda_provisioned_concurrency_config")
    assert pc["qualifier"] == "${aws_lambda_alias.this.name}"
    assert pc["provisioned_concurrent_executions"] == "${var.provisioned_concurrency}"

    log_group = resource("lambda_function", "aws_cloudwatch_log_group")
    assert log_group["name"] == "/aws/lambda/${var.function_name}"
    assert log_group["retention_in_days"] == "${var.log_retention_in_days}"

    for name in ["reserved_concurrency", "provisioned_concurrency"]:
        condition = single(variables[name]["validation"])["condition"]
        assert f"var.{name} >= 0" in condition, condition


def test_lambda_package_is_built_from_the_callers_source_dir() -> None:
    archive = data_source("lambda_function", "archive_file")
    assert archive["type"] == "zip"
    assert archive["source_dir"] == "${var.source_dir}"
    assert "__pycache__" in archive["excludes"]
    # The module takes the path from its caller: no default, no guessing from path.root.
    assert "default" not in blocks(MODULES / "lambda_function", "variable")["source_dir"]
    for path in module_files(MODULES / "lambda_function"):
        assert "path.root}/.." not in path.read_text(encoding="utf-8"), path
    # The root passes the tfvars value, which names the repository's lambda_src/ from envs/dev.
    assert blocks(ROOT, "module")["lambda_function"]["source_dir"] == "${var.lambda_source_dir}"
    source_dir = (ROOT / parse(ROOT / "terraform.tfvars")["lambda_source_dir"]).resolve()
    assert source_dir == REPO / "lambda_src"
    assert (source_dir / "handler.py").is_file()


# ------------------------------------------------------------------------------------------------
# Training host
# ------------------------------------------------------------------------------------------------

USER_DATA = MODULES / "training_host" / "user_data.sh.tftpl"
SAMPLE_COMMIT = "3f2c1d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"


def test_training_host_is_locked_down() -> None:
    instance = resource("training_host", "aws_instance")
    assert single(instance["metadata_options"])["http_tokens"] == "required"
    assert single(instance["root_block_device"])["encrypted"] is True
    assert instance["monitoring"] is True and instance["ebs_optimized"] is True
    assert instance["iam_instance_profile"] == "${var.iam_instance_profile}"
    assert instance["instance_type"] == "${var.instance_type}"
    assert "user_data.sh.tftpl" in instance["user_data"]
    variables = blocks(MODULES / "training_host", "variable")
    assert variables["instance_type"]["default"] == "m5.2xlarge"
    assert variables["associate_public_ip_address"]["default"] is False

    ami = data_source("training_host", "aws_ami")
    assert ami["owners"] == ["amazon"] and ami["most_recent"] is True
    assert "Deep Learning" in variables["ami_name_filter"]["default"]


def validation_regex(module: str, variable: str) -> re.Pattern[str]:
    condition = single(blocks(MODULES / module, "variable")[variable]["validation"])["condition"]
    match = re.search(rf'regex\("(.+?)", var\.{variable}\)', condition)
    assert match, condition
    return re.compile(match.group(1).replace("\\\\", "\\"))


def test_training_host_installs_a_pinned_commit() -> None:
    variables = blocks(MODULES / "training_host", "variable")
    assert "repo_ref" not in variables
    assert "default" not in variables["repo_commit"], "the commit must be chosen at apply time"
    pattern = validation_regex("training_host", "repo_commit")
    assert pattern.search(SAMPLE_COMMIT)
    for moving in ["main", "master", "v1.2.0", "HEAD", "refs/heads/main", SAMPLE_COMMIT[:12]]:
        assert not pattern.search(moving), f"validation lets the moving ref {moving!r} through"
    assert not pattern.search(SAMPLE_COMMIT.upper() + "x")

    template = USER_DATA.read_text(encoding="utf-8")
    assert "--branch" not in template and "clone" not in template
    assert "commit='${repo_commit}'" in template
    # The host fails its install, rather than running something else, if HEAD is not the pin.
    assert 'checkout --quiet --detach "$commit"' in template
    assert 'test "$(git -C "$install_dir" rev-parse HEAD)" = "$commit"' in template
    root = blocks(ROOT, "module")["training_host"]
    assert root["repo_commit"] == "${var.training_host_repo_commit}"
    assert "var.training_host_repo_commit != null" in root["count"]


def test_install_dir_is_declared_once_and_exposed() -> None:
    variables = blocks(MODULES / "training_host", "variable")
    assert variables["install_dir"]["default"] == "/opt/dogops"
    install_pattern = validation_regex("training_host", "install_dir")
    assert install_pattern.search("/opt/dogops") and not install_pattern.search("opt/dogops")
    assert not install_pattern.search("/opt/dog ops") and not install_pattern.search("/opt/'x'")
    # One place: no other file of terraform/ spells the path out.
    spelled = [
        path for path in [*TF_FILES, USER_DATA] if "/opt/dogops" in path.read_text(encoding="utf-8")
    ]
    assert spelled == [MODULES / "training_host" / "variables.tf"], spelled
    assert locals_of(MODULES / "training_host")["venv_dir"] == "${var.install_dir}/.venv"

    instance = resource("training_host", "aws_instance")
    for key, reference in {
        "install_dir": "var.install_dir",
        "venv_dir": "local.venv_dir",
        "repo_commit": "var.repo_commit",
        "repo_url": "var.repo_url",
    }.items():
        assert re.search(rf"\b{key}\s*=\s*{re.escape(reference)}\b", instance["user_data"]), key
    template = USER_DATA.read_text(encoding="utf-8")
    assert "install_dir='${install_dir}'" in template and "venv_dir='${venv_dir}'" in template
    assert 'uv venv --python 3.11 --seed "$venv_dir"' in template
    assert '"$venv_dir/bin/pip" install -e .' in template

    outputs = blocks(MODULES / "training_host", "output")
    assert outputs["instance_install_dir"]["value"] == "${var.install_dir}"
    assert outputs["instance_venv_dir"]["value"] == "${local.venv_dir}"
    root_outputs = blocks(ROOT, "output")
    assert root_outputs["training_host_install_dir"]["value"] == (
        "${one(module.training_host[*].instance_install_dir)}"
    )
    assert root_outputs["training_host_venv_dir"]["value"] == (
        "${one(module.training_host[*].instance_venv_dir)}"
    )


def render_user_data(tmp_path: Path) -> str:
    """The user data as Terraform's own templatefile() renders it, with the module's defaults
    and the variables the instance passes (an empty directory: no provider is needed)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH")
    install_dir = blocks(MODULES / "training_host", "variable")["install_dir"]["default"]
    values = {
        "repo_url": "https://example.com/org/dogops.git",
        "repo_commit": SAMPLE_COMMIT,
        "install_dir": install_dir,
        "venv_dir": locals_of(MODULES / "training_host")["venv_dir"].replace(
            "${var.install_dir}", install_dir
        ),
    }
    passed = re.findall(
        r"\b(\w+)\s*=\s*(?:var|local)\.", resource("training_host", "aws_instance")["user_data"]
    )
    assert sorted(passed) == sorted(values), passed
    arguments = ", ".join(f'{k} = "{v}"' for k, v in values.items())
    expression = f'base64encode(templatefile("{USER_DATA.as_posix()}", {{ {arguments} }}))'
    result = subprocess.run(
        [terraform, "console"],
        input=expression,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=terraform_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return base64.b64decode(result.stdout.strip().strip('"')).decode("utf-8")


def test_user_data_renders_to_valid_bash(tmp_path: Path) -> None:
    rendered = render_user_data(tmp_path)
    # cloud-init runs a user-data script with the interpreter its first line names.
    assert rendered.startswith("#!/bin/bash\n")
    assert f"commit='{SAMPLE_COMMIT}'" in rendered
    assert "install_dir='/opt/dogops'" in rendered and "venv_dir='/opt/dogops/.venv'" in rendered
    assert "${" not in rendered and "%{" not in rendered  # every template reference rendered
    script = tmp_path / "user_data.sh"
    script.write_text(rendered, encoding="utf-8")
    check = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stderr


def test_training_host_security_group_has_no_ingress() -> None:
    sg = resource("training_host", "aws_security_group")
    assert sg.get("ingress", []) == []
    egress = sg["egress"]
    assert egress and all(e["from_port"] == 443 and e["to_port"] == 443 for e in egress)
    assert all(e["protocol"] == "tcp" and e["description"] for e in egress)
    rule_types = {
        "aws_security_group_rule",
        "aws_vpc_security_group_ingress_rule",
    }
    for directory in [*(MODULES / n for n in MODULE_NAMES), ROOT]:
        for rtype, _ in typed_blocks(directory, "resource"):
            assert rtype not in rule_types, f"{directory.name}: {rtype} adds ingress"


# ------------------------------------------------------------------------------------------------
# Endpoint autoscaling
# ------------------------------------------------------------------------------------------------


def test_endpoint_autoscaling_target_and_policy() -> None:
    local_values = locals_of(MODULES / "endpoint_autoscaling")
    target = resource("endpoint_autoscaling", "aws_appautoscaling_target")
    assert resolve(target["resource_id"], local_values) == (
        "endpoint/${var.endpoint_name}/variant/${var.variant_name}"
    )
    assert target["scalable_dimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["service_namespace"] == "sagemaker"
    assert target["min_capacity"] == "${var.min_capacity}"
    assert target["max_capacity"] == "${var.max_capacity}"

    policy = resource("endpoint_autoscaling", "aws_appautoscaling_policy")
    assert policy["policy_type"] == "TargetTrackingScaling"
    assert policy["resource_id"] == "${aws_appautoscaling_target.this.resource_id}"
    config = single(policy["target_tracking_scaling_policy_configuration"])
    assert config["scale_in_cooldown"] == "${var.scale_in_cooldown}"
    assert config["scale_out_cooldown"] == "${var.scale_out_cooldown}"
    assert config["target_value"] == "${var.target_invocations_per_instance}"
    metric = single(config["predefined_metric_specification"])
    assert metric["predefined_metric_type"] == "SageMakerVariantInvocationsPerInstance"

    variables = blocks(MODULES / "endpoint_autoscaling", "variable")
    for name in ["scale_in_cooldown", "scale_out_cooldown"]:
        assert "default" not in variables[name], name
        assert f"var.{name} >= 0" in single(variables[name]["validation"])["condition"]


def test_no_sagemaker_endpoint_managed_by_terraform() -> None:
    for path in TF_FILES:
        for entry in parse(path).get("resource", []):
            assert "aws_sagemaker_endpoint" not in entry, f"{path}: endpoint belongs to ops"


# ------------------------------------------------------------------------------------------------
# The terraform binary, when there is one
# ------------------------------------------------------------------------------------------------


def terraform_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHECKPOINT_DISABLE"] = "1"  # Terraform's update check calls out
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_DATA_DIR"] = str(tmp_path / "tf-data")
    return env


def test_terraform_fmt(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TF)],
        capture_output=True,
        text=True,
        env=terraform_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_validate(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH")
    # Work on a copy so that init leaves no .terraform/ or lock file in the repository.
    copy = tmp_path / "terraform"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns(".terraform", "build"))
    workdir = copy / "envs" / "dev"
    env = terraform_env(tmp_path)
    init = subprocess.run(
        [terraform, "init", "-backend=false", "-input=false", "-no-color"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if init.returncode != 0:
        lines = [line for line in (init.stderr + init.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if "Error" in line), lines[-1] if lines else "")
        pytest.skip(f"terraform init could not install the pinned providers: {detail.strip()}")
    result = subprocess.run(
        [terraform, "validate", "-no-color"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
