"""ops.config reads every name and number of the dev environment from terraform/ (the tfvars,
the variables' defaults, the modules' expressions) and follows when they change: each test that
changes something works on a copy of terraform/ in a temporary folder."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ops import config, hcl

REPO = Path(__file__).resolve().parents[2]
FACTS = {
    "data.aws_caller_identity.current.account_id": "111122223333",
    "data.aws_partition.current.partition": "aws",
    "data.aws_region.current.region": "eu-west-1",
}


def hcl_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def set_tfvars(tfvars: Path, **values: Any) -> None:
    """Change (or add) ``name = value`` lines of a tfvars file."""
    text = tfvars.read_text()
    for name, value in values.items():
        line = f"{name} = {hcl_literal(value)}"
        text, found = re.subn(rf"(?m)^{name}\s*=.*$", line, text)
        if not found:
            text += f"\n{line}\n"
    tfvars.write_text(text)


def set_default(variables_tf: Path, variable: str, value: Any) -> None:
    """Change the default of one variable in a module's variables.tf."""
    text = variables_tf.read_text()
    block = re.compile(rf'(variable "{variable}" \{{.*?\n\s*default\s*=\s*)([^\n]*)', re.S)
    text, found = block.subn(lambda m: m.group(1) + hcl_literal(value), text, count=1)
    assert found, f"no default of {variable} in {variables_tf}"
    variables_tf.write_text(text)


def copy_terraform(folder: Path) -> Path:
    """terraform/ and lambda_src/ copied into ``folder`` (the tfvars name lambda_src relative to
    the root module); returns the copy's tfvars."""
    shutil.copytree(REPO / "terraform", folder / "terraform", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(REPO / "lambda_src", folder / "lambda_src")
    return folder / "terraform" / "envs" / "dev" / "terraform.tfvars"


@pytest.fixture
def tfvars(tmp_path: Path) -> Path:
    return copy_terraform(tmp_path)


def test_the_repository_declares_the_mission_numbers():
    function = config.lambda_settings()
    assert function.reserved_concurrency == 100
    assert function.provisioned_concurrency == 3
    endpoint = config.endpoint_settings()
    assert (endpoint.min_capacity, endpoint.max_capacity) == (1, 4)
    assert endpoint.target_invocations_per_instance == 70
    assert (endpoint.scale_in_cooldown, endpoint.scale_out_cooldown) == (30, 300)


def test_lambda_settings_come_from_the_tfvars_and_the_module_defaults():
    function = config.lambda_settings()
    tfvars = config.load_tfvars()
    assert function.function_name == tfvars["lambda_function_name"]
    assert function.alias_name == tfvars["lambda_alias_name"]
    assert function.log_retention_in_days == tfvars["lambda_log_retention_in_days"]
    assert function.log_group_name == f"/aws/lambda/{tfvars['lambda_function_name']}"
    assert function.environment == {"ENDPOINT_NAME": tfvars["endpoint_name"]}
    # Not in the tfvars: the lambda_function module's defaults.
    assert function.handler == "handler.handler"
    assert function.runtime == "python3.12"
    assert (function.memory_size, function.timeout) == (512, 65)
    assert function.architectures == ("x86_64",)
    assert function.publish is True
    # Relative to the root module, where terraform runs.
    assert function.source_dir == REPO / "lambda_src"
    assert "**/*.pyc" in function.excludes


def test_changed_tfvars_and_module_defaults_are_followed(tfvars: Path):
    set_tfvars(
        tfvars,
        lambda_function_name="other-fn",
        lambda_alias_name="blue",
        reserved_concurrency=7,
        provisioned_concurrency=2,
        endpoint_name="other-endpoint",
        max_capacity=6,
        name_prefix="other",
    )
    set_default(
        tfvars.parents[2] / "modules" / "lambda_function" / "variables.tf", "memory_size", 1024
    )
    function = config.lambda_settings(tfvars)
    assert function.function_name == "other-fn"
    assert function.alias_name == "blue"
    assert (function.reserved_concurrency, function.provisioned_concurrency) == (7, 2)
    assert function.memory_size == 1024
    assert function.endpoint_name == "other-endpoint"
    assert function.log_group_name == "/aws/lambda/other-fn"
    assert function.source_dir == tfvars.parents[3] / "lambda_src"
    endpoint = config.endpoint_settings(tfvars)
    assert endpoint.max_capacity == 6
    assert endpoint.resource_id == "endpoint/other-endpoint/variant/AllTraffic"
    assert endpoint.policy_name == "other-endpoint-AllTraffic-invocations"
    roles = {r.label: r for r in config.iam_roles(FACTS, tfvars)}
    assert roles["lambda"].name == "other-lambda"
    condition = roles["lambda"].assume_role_policy["Statement"][0]["Condition"]
    assert condition["ArnLike"]["aws:SourceArn"] == [
        "arn:aws:lambda:eu-west-1:111122223333:function:other-fn",
        "arn:aws:lambda:eu-west-1:111122223333:function:other-fn:*",
    ]
    # The repository's own files are untouched.
    assert config.lambda_settings().function_name != "other-fn"


def test_zero_provisioned_concurrency_means_no_config(tfvars: Path):
    set_tfvars(tfvars, provisioned_concurrency=0)
    assert config.lambda_settings(tfvars).provisioned_concurrency == 0


def test_terraform_refusals_are_refused_here_too(tfvars: Path):
    set_tfvars(tfvars, reserved_concurrency=2, provisioned_concurrency=3)
    with pytest.raises(hcl.HclError, match="provisioned_concurrency cannot exceed reserved"):
        config.lambda_settings(tfvars)
    set_tfvars(tfvars, reserved_concurrency=-1, provisioned_concurrency=0)
    with pytest.raises(hcl.HclError, match="reserved_concurrency must be a whole number >= 0"):
        config.lambda_settings(tfvars)
    set_tfvars(tfvars, reserved_concurrency=5, min_capacity=0)
    with pytest.raises(hcl.HclError, match="min_capacity must be a whole number >= 1"):
        config.endpoint_settings(tfvars)


def test_a_variable_missing_from_the_tfvars_is_named(tfvars: Path):
    tfvars.write_text(re.sub(r"(?m)^endpoint_name\s*=.*$", "", tfvars.read_text()))
    with pytest.raises(hcl.HclError, match="variable 'endpoint_name' has no value"):
        config.endpoint_settings(tfvars)


def test_iam_roles_policies_and_outputs_follow_the_facts():
    facts = {
        **FACTS,
        "module.storage.aws_s3_bucket.this.arn": "arn:aws:s3:::bucket-x",
        "module.storage.aws_s3_bucket.this.id": "bucket-x",
        "module.storage.aws_kms_key.this.arn": "arn:aws:kms:eu-west-1:111122223333:key/k",
    }
    roles = config.iam_roles(facts)
    prefix = config.load_tfvars()["name_prefix"]
    assert {r.name for r in roles} >= {f"{prefix}-lambda", f"{prefix}-sagemaker-training"}
    facts.update({f"module.iam.aws_iam_role.{r.label}.id": r.name for r in roles})
    facts.update({f"module.iam.aws_iam_role.{r.label}.name": r.name for r in roles})
    policies = {p.name: p for p in config.iam_role_policies(facts)}
    training = policies[f"{prefix}-sagemaker-training"].policy["Statement"]
    reads = next(s for s in training if s.get("Sid") == "ReadTrainingInputs")
    assert "arn:aws:s3:::bucket-x/data/*" in reads["Resource"]
    (profile,) = config.iam_instance_profiles(facts)
    assert profile.role == f"{prefix}-training-host"
    outputs = config.outputs(facts)
    assert outputs["s3_bucket_name"] == "bucket-x"
    assert outputs["endpoint_name"] == config.endpoint_settings().endpoint_name
    assert outputs["training_host_instance_id"] is None  # no host without a subnet
    assert "lambda_alias_arn" not in outputs  # only AWS knows it: no fact for it
    with pytest.raises(hcl.Unknown):
        config.lambda_role_arn(facts)
    facts["module.iam.aws_iam_role.lambda.arn"] = "arn:aws:iam::111122223333:role/r"
    assert config.lambda_role_arn(facts) == "arn:aws:iam::111122223333:role/r"


def test_facts_belong_to_the_module_that_declares_the_resource(tmp_path: Path):
    """Two modules each declare ``aws_iam_role.this`` (the convention): each gets its own ARN,
    and a data source's fact given once for every module reaches both."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.tf").write_text(
            f"""
data "aws_caller_identity" "current" {{}}
resource "aws_iam_role" "this" {{
  name = "role-{name}"
}}
output "arn" {{
  value = aws_iam_role.this.arn
}}
output "account" {{
  value = data.aws_caller_identity.current.account_id
}}
"""
        )
    root = module(
        tmp_path,
        """
module "a" {
  source = "./a"
}
module "b" {
  source = "./b"
}
output "arns" {
  value = [module.a.arn, module.b.arn]
}
""",
    )
    root.facts.update(
        {
            "aws_iam_role.this.arn": "arn:aws:iam::1:role/no-module",
            "module.a.aws_iam_role.this.arn": "arn:aws:iam::1:role/role-a",
            "module.b.aws_iam_role.this.arn": "arn:aws:iam::1:role/role-b",
            "data.aws_caller_identity.current.account_id": "111122223333",
            "module.b.data.aws_caller_identity.current.account_id": "444455556666",
        }
    )
    assert root.output("arns") == ["arn:aws:iam::1:role/role-a", "arn:aws:iam::1:role/role-b"]
    assert root.child("a").output("account") == "111122223333"  # the provider's, for all
    assert root.child("b").output("account") == "444455556666"  # its own wins
    del root.facts["module.b.aws_iam_role.this.arn"]
    fresh = module(tmp_path, (tmp_path / "main.tf").read_text())
    fresh.facts.update(root.facts)
    with pytest.raises(hcl.Unknown, match=r"module\.b\.aws_iam_role\.this\.arn"):
        fresh.child("b").output("arn")  # not module a's, nor the root's


def module(tmp_path: Path, text: str, **inputs: Any) -> hcl.Module:
    (tmp_path / "main.tf").write_text(text)
    return hcl.Module(tmp_path, inputs)


def test_expressions_evaluate_as_terraform_does(tmp_path: Path):
    m = module(
        tmp_path,
        """
variable "n" {
  type = number
}
variable "names" {
  type    = list(string)
  default = ["a/", "b/"]
}
locals {
  precedence = 1 + 2 * 3 >= 7 && !false
  chosen     = var.n > 0 ? "some" : "none"
  arns       = [for p in var.names : "x/${p}*" if p != "b/"]
  merged     = merge({ A = "1" }, { B = lower("X"), "C" = "say \\"hi\\"" })
  trimmed    = trimsuffix("prefix-", "-")
  escaped    = "$${literal}"
  checked    = can(regex("^[a-z]+$", "abc")) && !can(regex("^[a-z]+$", "A"))
}
""",
        n="3",
    )
    assert m.var("n") == 3  # converted to the declared type
    assert m.local("precedence") is True
    assert m.local("chosen") == "some"
    assert m.local("arns") == ["x/a/*"]
    assert m.local("merged") == {"A": "1", "B": "x", "C": 'say "hi"'}
    assert m.local("trimmed") == "prefix"
    assert m.local("escaped") == "${literal}"
    assert m.local("checked") is True


def test_an_unsupported_function_is_an_error_not_a_guess(tmp_path: Path):
    m = module(tmp_path, 'locals {\n  x = cidrsubnet("10.0.0.0/16", 8, 1)\n}\n')
    with pytest.raises(hcl.HclError, match=r"cidrsubnet\(\) is not supported"):
        m.local("x")
