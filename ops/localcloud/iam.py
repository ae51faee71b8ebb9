"""IAM operations the local cloud answers itself.

The local cloud does not enforce IAM (moto records roles and policies; nothing is denied), so
the policy simulator answers what such a cloud does: every action is allowed. The SageMaker SDK
v3 asks it before staging code (``iam:SimulatePrincipalPolicy``), which moto lacks.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
OPERATIONS = ("SimulatePrincipalPolicy", "SimulateCustomPolicy")


def _members(form: dict[str, list[str]], name: str) -> list[str]:
    indexed = []
    for key, values in form.items():
        prefix = f"{name}.member."
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            indexed.append((int(key[len(prefix) :]), values[0]))
    return [value for _, value in sorted(indexed)]


def operation_of(body: bytes) -> str | None:
    form = parse_qs(body.decode("utf-8", errors="replace"))
    action = (form.get("Action") or [""])[0]
    return action if action in OPERATIONS else None


def simulate(body: bytes) -> str:
    """The XML answer to a Simulate*Policy request: every action on every resource allowed."""
    form = parse_qs(body.decode("utf-8", errors="replace"))
    action = form["Action"][0]
    resources = _members(form, "ResourceArns") or ["*"]
    results = []
    for name in _members(form, "ActionNames"):
        for resource in resources:
            results.append(
                "<member>"
                f"<EvalActionName>{escape(name)}</EvalActionName>"
                f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                "<EvalDecision>allowed</EvalDecision>"
                "<MatchedStatements/><MissingContextValues/>"
                "</member>"
            )
    return (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}"
        f"</EvaluationResults></{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
