"""Static checks of terraform/: parsed with python-hcl2, no AWS and no provider download needed.

The last two tests run the terraform binary (fmt, init + validate) when it is on PATH.
"""

from __future__ import annotations

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
        return local_values[match.group(1)]

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
    # Every input and output appears in the hand-written terraform-docs tables.
    for var in blocks(directory, "variable"):
        assert f'<a name="input_{var}"></a>' in readme, (name, var)
    for out in blocks(directory, "output"):
        assert f'<a name="output_{out}"></a>' in readme, (name, out)


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
    if name != "iam":  # three roles of equal rank, named by purpose
        assert any(rname == "this" for _, rname in typed_blocks(directory, "resource"))
    prefixes = {
        "storage": ("s3_bucket_", "kms_key_"),
        "iam": ("sagemaker_role_", "lambda_role_", "training_host_", "invoke_endpoint_"),
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
        "lambda_function_name",
        "lambda_alias_name",
        "endpoint_name",
        "training_host_instance_id",
        "region",
    ]:
        assert name in outputs, name


# ------------------------------------------------------------------------------------------------
# IAM: no wildcard actions, least privilege
# ------------------------------------------------------------------------------------------------

IAM_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")


def action_values(directory: Path) -> Iterator[tuple[Path, str]]:
    local_values = locals_of(directory)
    for path in module_files(directory):
        for key, value in walk(parse(path)):
            if key not in ("actions", "not_actions", "Action", "NotAction"):
                continue
            value = resolve(value, local_values)
            assert isinstance(value, list), f"{path}: {key} = {value!r} is not a literal list"
            for action in value:
                yield path, action


def test_no_wildcard_actions_anywhere() -> None:
    checked = 0
    for directory in [*(MODULES / n for n in MODULE_NAMES), ROOT]:
        for path, action in action_values(directory):
            checked += 1
            assert isinstance(action, str) and IAM_ACTION.match(action), (path, action)
            assert "*" not in action and "?" not in action, f"{path}: wildcard action {action}"
    assert checked >= 40, checked
    # Belt and braces: no quoted "service:...*" action-like string in any file, locals included.
    for path in TF_FILES:
        for key, value in walk(parse(path)):
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and re.fullmatch(r"[a-z0-9-]+:[A-Za-z]*\*", item):
                    pytest.fail(f"{path}: {key} holds wildcard action {item}")


def test_lambda_role_only_invokes_its_endpoint_and_writes_its_logs() -> None:
    local_values = locals_of(MODULES / "iam")
    stmts = statements("iam", "lambda")
    actions = {a for s in stmts for a in s["actions"]}
    assert actions == {"sagemaker:InvokeEndpoint", "logs:CreateLogStream", "logs:PutLogEvents"}
    for stmt in stmts:
        assert stmt.get("effect", "Allow") == "Allow"
        resources = [resolve(r, local_values) for r in stmt["resources"]]
        assert "*" not in resources
        if stmt["actions"] == ["sagemaker:InvokeEndpoint"]:
            assert resources == [
                "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}"
                ":endpoint/${lower(var.endpoint_name)}"
            ]
        else:
            assert set(stmt["actions"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert len(resources) == 1 and resources[0].endswith(":log-stream:*"), resources
            assert ":log-group:/aws/lambda/${var.lambda_function_name}:" in resources[0]
    role_policies = [
        body
        for (rtype, _), body in typed_blocks(MODULES / "iam", "resource").items()
        if rtype in ("aws_iam_role_policy", "aws_iam_role_policy_attachment")
        and body.get("role", "").startswith("${aws_iam_role.lambda.")
    ]
    assert role_policies == [resource("iam", "aws_iam_role_policy", "lambda")]
    assert role_policies[0]["policy"] == "${data.aws_iam_policy_document.lambda.json}"


def test_sagemaker_role_is_scoped_to_bucket_prefixes() -> None:
    iam = MODULES / "iam"
    variables = blocks(iam, "variable")
    assert variables["bucket_prefixes"]["default"] == ["data/", "models/", "checkpoints/", "code/"]
    local_values = locals_of(iam)
    assert local_values["bucket_object_arns"] == (
        '${[for p in var.bucket_prefixes : "${var.bucket_arn}/${p}*"]}'
    )
    sm = data_source("iam", "aws_iam_policy_document", "sagemaker")
    assert sm["source_policy_documents"] == ["${data.aws_iam_policy_document.bucket_access.json}"]
    s3_actions = {
        a for s in statements("iam", "bucket_access") for a in s["actions"] if a.startswith("s3:")
    }
    assert s3_actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    for stmt in [*statements("iam", "bucket_access"), *statements("iam", "sagemaker")]:
        if stmt["resources"] == ["*"]:
            # Only actions without resource-level permissions may use "*".
            assert stmt["actions"] in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"])
            if stmt["actions"] == ["cloudwatch:PutMetricData"]:
                assert single(stmt["condition"])["variable"] == "cloudwatch:namespace"
    ecr = [s for s in statements("iam", "sagemaker") if "ecr:BatchGetImage" in s["actions"]]
    assert single(ecr)["resources"] == "${local.dlc_repository_arns}"
    logs = [s for s in statements("iam", "sagemaker") if "logs:PutLogEvents" in s["actions"]]
    assert all("/aws/sagemaker/" in r for r in resolve(single(logs)["resources"], local_values))


def test_training_host_role_uses_ssm_and_bucket_prefixes() -> None:
    attachment = resource("iam", "aws_iam_role_policy_attachment", "training_host_ssm")
    assert attachment["policy_arn"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")
    policy = resource("iam", "aws_iam_role_policy", "training_host")
    assert policy["policy"] == "${data.aws_iam_policy_document.bucket_access.json}"
    assert resource("iam", "aws_iam_instance_profile", "training_host")["role"] == (
        "${aws_iam_role.training_host.name}"
    )


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
    deny = [s for s in statements("storage", "bucket") if s["effect"] == "Deny"]
    cond = single(single(deny)["condition"])
    assert cond == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
    actions = set(resolve(single(deny)["actions"], locals_of(MODULES / "storage")))
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject"} <= actions


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


def test_lambda_package_is_built_from_lambda_src() -> None:
    archive = data_source("lambda_function", "archive_file")
    assert archive["type"] == "zip"
    assert archive["source_dir"] == "${local.source_dir}"
    source_dir = locals_of(MODULES / "lambda_function")["source_dir"]
    assert '"${path.root}/../../../lambda_src"' in source_dir
    assert (ROOT / "../../../lambda_src").resolve() == REPO / "lambda_src"
    assert "__pycache__" in archive["excludes"]


# ------------------------------------------------------------------------------------------------
# Training host
# ------------------------------------------------------------------------------------------------


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

    user_data = (MODULES / "training_host" / "user_data.sh.tftpl").read_text(encoding="utf-8")
    assert "git clone" in user_data and "pip install -e ." in user_data

    ami = data_source("training_host", "aws_ami")
    assert ami["owners"] == ["amazon"] and ami["most_recent"] is True
    assert "Deep Learning" in variables["ami_name_filter"]["default"]


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
