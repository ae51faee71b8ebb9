"""IAM operations the local cloud answers itself.

The local cloud does not enforce IAM (moto records roles and policies; nothing is denied), so
the policy simulator answers what such a cloud does: every action is allowed. The SageMaker SDK
v3 asks it before staging code (``iam:SimulatePrincipalPolicy``), which moto lacks.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from ops.localcloud.routes import Route, query_routes
from ops.localcloud.service import Service
from ops.localcloud.wire import Call, members

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def simulate(call: Call) -> str:
    """A Simulate*Policy result: every action on every resource allowed."""
    resources = members(call.params, "ResourceArns") or ["*"]
    results = [
        "<member>"
        f"<EvalActionName>{escape(name)}</EvalActionName>"
        f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
        "<EvalDecision>allowed</EvalDecision>"
        "<MatchedStatements/><MissingContextValues/>"
        "</member>"
        for name in members(call.params, "ActionNames")
        for resource in resources
    ]
    return (
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}</EvaluationResults>"
    )


class IamService(Service):
    def routes(self) -> list[Route]:
        handlers = {"SimulatePrincipalPolicy": simulate, "SimulateCustomPolicy": simulate}
        return query_routes("IAM", "iam", NAMESPACE, handlers)
