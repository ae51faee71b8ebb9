"""List operations page the way AWS pages them: opaque tokens that survive new items between
calls, ValidationException for a token that is not ours or a MaxResults out of range."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.localcloud.conftest import script_job, validate_response, wait_training

QUICK = 'print("done", flush=True)'


def test_pages_neither_repeat_nor_skip_when_jobs_are_created_between_calls(staged):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    for name in ("page-a", "page-b", "page-c"):
        sm.create_training_job(**script_job(s3, name, QUICK))
    first = sm.list_training_jobs(MaxResults=1, NameContains="page-")
    assert not first["NextToken"].isdigit()  # opaque, not an offset
    sm.create_training_job(**script_job(s3, "page-d", QUICK))  # lands between two calls
    seen = [s["TrainingJobName"] for s in first["TrainingJobSummaries"]]
    token = first["NextToken"]
    while token:
        answer = sm.list_training_jobs(MaxResults=1, NameContains="page-", NextToken=token)
        validate_response(sm, "ListTrainingJobs", answer)
        seen += [s["TrainingJobName"] for s in answer["TrainingJobSummaries"]]
        token = answer.get("NextToken")
    assert len(seen) == len(set(seen)), seen
    assert {"page-a", "page-b", "page-c"} <= set(seen)
    for name in ("page-a", "page-b", "page-c", "page-d"):
        wait_training(sm, name)


@pytest.mark.parametrize("token", ["7", "not a token", "eyJ2IjogMn0=", "e30="])
def test_a_token_that_is_not_ours_is_a_validation_error(staged, token):
    sm = staged.client("sagemaker")
    with pytest.raises(ClientError) as refused:
        sm.list_training_jobs(NextToken=token)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(("service", "operation", "limit"), [
    ("sagemaker", "list_training_jobs", 100),
    ("sagemaker", "list_hyper_parameter_tuning_jobs", 100),
    ("ssm", "list_commands", 50),
])  # fmt: skip
def test_max_results_outside_the_service_model_range_is_refused(staged, service, operation, limit):
    # botocore checks the range itself; the CLI and SDKs with validation off still send it.
    client = staged.cloud_client(service, Config(parameter_validation=False))
    for size in (0, limit + 1):
        with pytest.raises(ClientError) as refused:
            getattr(client, operation)(MaxResults=size)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
