"""The settings Terraform applies, read from the same file: terraform/envs/dev/terraform.tfvars.

One source of truth (DESIGN.md, contract 4): the endpoint's name and variant, and the numbers of
its autoscaling policy, are declared once in the tfvars. Terraform applies them on AWS; `ops`
reads them here to name the endpoint it promotes and to register the policy when Terraform has
not (the first promotion, the local cloud).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ops.errors import OpsError
from ops.target import TERRAFORM_ENV

TFVARS = TERRAFORM_ENV / "terraform.tfvars"


@cache
def _load(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2 import SerializationOptions

    # python-hcl2 8.x keeps quotes and adds __is_block__ markers by default; this is the plain
    # {name: value} shape a tfvars file means.
    options = SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    try:
        with path.open(encoding="utf-8") as f:
            return hcl2.load(f, serialization_options=options)
    except OSError as exc:
        raise OpsError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # lark's parse errors share no base class worth naming here
        raise OpsError(f"cannot parse {path}: {exc}") from exc


def load_tfvars(path: Path = TFVARS) -> dict[str, Any]:
    """The tfvars as {name: value} (a copy: callers may change it)."""
    return dict(_load(Path(path)))


@dataclass(frozen=True)
class EndpointSettings:
    """The endpoint `ops promote-endpoint` creates or updates, and its target-tracking policy."""

    endpoint_name: str
    variant_name: str
    autoscaling: bool  # enable_endpoint_autoscaling: register the scalable target and policy
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: float
    scale_in_cooldown: int
    scale_out_cooldown: int
    disable_scale_in: bool = False  # the module's default; the dev tfvars do not set it

    @property
    def resource_id(self) -> str:
        """The scalable target's ResourceId (as terraform/modules/endpoint_autoscaling names it)."""
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"

    @property
    def policy_name(self) -> str:
        """The policy's name, the one Terraform gives it: either may create it, the other
        then updates the same policy instead of adding a second one."""
        return f"{self.endpoint_name}-{self.variant_name}-invocations"


def endpoint_settings(path: Path = TFVARS) -> EndpointSettings:
    tfvars = _load(Path(path))
    required = [
        "endpoint_name",
        "variant_name",
        "min_capacity",
        "max_capacity",
        "target_invocations_per_instance",
        "scale_in_cooldown",
        "scale_out_cooldown",
    ]
    missing = [key for key in required if key not in tfvars]
    if missing:
        raise OpsError(f"{path} lacks {', '.join(missing)}")
    return EndpointSettings(
        endpoint_name=str(tfvars["endpoint_name"]),
        variant_name=str(tfvars["variant_name"]),
        autoscaling=bool(tfvars.get("enable_endpoint_autoscaling", True)),
        min_capacity=int(tfvars["min_capacity"]),
        max_capacity=int(tfvars["max_capacity"]),
        target_invocations_per_instance=float(tfvars["target_invocations_per_instance"]),
        scale_in_cooldown=int(tfvars["scale_in_cooldown"]),
        scale_out_cooldown=int(tfvars["scale_out_cooldown"]),
        disable_scale_in=bool(tfvars.get("disable_scale_in", False)),
    )
