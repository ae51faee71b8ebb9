"""Concurrent traffic through the Lambda function in front of the endpoint, and a verdict on
whether the endpoint and the function scaled as declared.

    locust -f loadtest/lambda.py --headless --csv runs/loadtest/lambda   # or the web UI
    ops loadtest                                                          # the same, wrapped

Options (loadtest/options.py; Locust's --help lists only its own): --target local|aws,
--function-name/--qualifier, --shape step|spike|ramp with its users, rate and phases,
--payload image|url, --time-scale, and the verdict's expectations. Defaults: pyproject.toml's
[tool.locust] for the load, Terraform's declarations for the function, endpoint and policy.
The watch, verdict and reports are loadtest/hooks.py's; this file holds the user and the shape.
"""

from locust import events, task

from loadtest import hooks
from loadtest.client import LambdaUser
from loadtest.shapes import ScalingShape

hooks.install(events)


class ClassifierCaller(LambdaUser):
    """A client of the classifier: the chosen payload, at the chosen rate."""

    @task
    def classify(self) -> None:
        self.invoke()


__all__ = ["ClassifierCaller", "ScalingShape"]
