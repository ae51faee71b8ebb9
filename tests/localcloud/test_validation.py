"""Requests are checked against botocore's service model as AWS checks them, for every
operation the local cloud answers itself; SageMaker's own rules and defaults come on top.

boto3 checks some parameters itself (required members, types, lengths, ranges); the AWS CLI and
SDKs with that check off send anything, so these tests turn it off to reach the server."""

from __future__ import annotations

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel

from ops.localcloud import shapes
from ops.localcloud.sagemaker import validate
from ops.localcloud.sagemaker.records import InvalidRequest
from ops.localcloud.ssm.host import TRAINING_HOST_ID
from ops.localcloud.wire import AwsError
from tests.localcloud.conftest import (
    BUCKET,
    ROLE,
    script_job,
    training_request,
    validate_response,
    wait_training,
)

UNCHECKED = Config(parameter_validation=False)

# -- shapes.py on a small model of its own ---------------------------------------------------

SYNTHETIC = ServiceModel(
    {
        "metadata": {
            "protocol": "json",
            "jsonVersion": "1.1",
            "apiVersion": "2020-01-01",
            "targetPrefix": "Synthetic",
            "serviceId": "Synthetic",
            "endpointPrefix": "synthetic",
            "signatureVersion": "v4",
        },
        "operations": {
            "Put": {
                "name": "Put",
                "http": {"method": "POST", "requestUri": "/"},
                "input": {"shape": "PutRequest"},
            }
        },
        "shapes": {
            "PutRequest": {
                "type": "structure",
                "required": ["Name"],
                "members": {
                    name: {"shape": shape}
                    for name, shape in [
                        ("Name", "Name"),
                        ("Count", "Count"),
                        ("Ratio", "Ratio"),
                        ("Flag", "Flag"),
                        ("Mode", "Mode"),
                        ("Items", "Items"),
                        ("Labels", "Labels"),
                        ("Tags", "Tags"),
                        ("Node", "Node"),
                        ("Secret", "Secret"),
                        ("When", "When"),
                        ("Word", "Word"),
                    ]
                },
            },
            "Name": {"type": "string", "min": 2, "max": 5, "pattern": "[a-z]+"},
            "Count": {"type": "integer", "min": 1, "max": 10},
            "Ratio": {"type": "double"},
            "Flag": {"type": "boolean"},
            "Mode": {"type": "string", "enum": ["Fast", "Slow"]},
            "Items": {"type": "list", "member": {"shape": "Item"}, "max": 2},
            "Item": {
                "type": "structure",
                "required": ["Key"],
                "members": {"Key": {"shape": "Name"}},
            },
            "Labels": {"type": "list", "member": {"shape": "Name"}},
            "Tags": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Count"}},
            "Node": {
                "type": "structure",
                "members": {"Child": {"shape": "Node"}, "Count": {"shape": "Count"}},
            },
            "Secret": {"type": "string", "max": 3, "sensitive": True},
            "When": {"type": "timestamp"},
            "Word": {"type": "string", "pattern": r"\p{L}+"},  # Java only
        },
    },
    service_name="synthetic",
)


def refusal(params: dict) -> AwsError:
    with pytest.raises(AwsError) as refused:
        shapes.check_against(SYNTHETIC, "Put", params)
    return refused.value


def test_a_request_within_the_model_passes_and_unknown_members_are_ignored():
    shapes.check_against(
        SYNTHETIC,
        "Put",
        {
            "Name": "abc",
            "Count": 3,
            "Ratio": 1,
            "Flag": True,
            "Mode": "Fast",
            "Items": [{"Key": "ab"}],
            "Labels": ["ab", "cde"],
            "Tags": {"ab": 10},
            "Node": {"Child": {"Count": 1}},
            "Secret": None,  # null is absent
            "When": 1767225600.5,
            "Unknown": [1, 2],
        },
    )


def test_every_violation_is_listed_in_awss_words():
    refused = refusal({"Name": "ABCDEF", "Count": 0, "Mode": "Medium"})
    assert refused.code == "ValidationException"
    assert refused.message == (
        "4 validation errors detected: "
        "Value 'ABCDEF' at 'name' failed to satisfy constraint: "
        "Member must have length less than or equal to 5; "
        "Value 'ABCDEF' at 'name' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-z]+; "
        "Value '0' at 'count' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; "
        "Value 'Medium' at 'mode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Fast, Slow]"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
             "Member must not be null"),
        ({"Name": "ab", "Items": [{"Key": "ab"}, {}]},
         "Value null at 'items.2.member.key' failed to satisfy constraint: "
         "Member must not be null"),
        ({"Name": "ab", "Items": [{"Key": "ab"}] * 3},
         "at 'items' failed to satisfy constraint: "
         "Member must have length less than or equal to 2"),
        ({"Name": "ab", "Labels": ["ab", "x"]},
         "Value '[ab, x]' at 'labels' failed to satisfy constraint: Member must satisfy "
         "constraint: [Member must have length greater than or equal to 2]"),
        ({"Name": "ab", "Tags": {"x": 11}},
         "2 validation errors detected: Value '{x=11}' at 'tags' failed to satisfy constraint: "
         "Map keys must satisfy constraint: [Member must have length greater than or equal to 2]; "
         "Value '{x=11}' at 'tags' failed to satisfy constraint: Map value must satisfy "
         "constraint: [Member must have value less than or equal to 10]"),
        ({"Name": "ab", "Node": {"Child": {"Child": {"Count": 0}}}},
         "Value '0' at 'node.child.child.count' failed to satisfy constraint"),
        ({"Name": "ab", "Secret": "hunter2"},
         "Value at 'secret' failed to satisfy constraint: Member must have length less than"),
    ],
)  # fmt: skip
def test_violations_name_the_member_path(params, message):
    refused = refusal(params)
    assert refused.code == "ValidationException"
    assert message in refused.message


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("Count", "3", "STRING_VALUE can not be converted to an Integer"),
        ("Count", 1.5, "NUMBER_VALUE can not be converted to an Integer"),
        ("Count", 2**31, "NUMBER_VALUE can not be converted to an Integer"),
        ("Count", True, "TRUE_VALUE can not be converted to an Integer"),
        ("Name", 3, "NUMBER_VALUE can not be converted to a String"),
        ("Flag", "true", "STRING_VALUE can not be converted to a Boolean"),
        ("Name", ["ab"], "Start of list found where not expected"),
        ("Items", {}, "Start of structure or map found where not expected."),
        ("Items", "ab", "Expected list or null"),
        ("Node", 1, "Expected null"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_serialization_exception(member, value, message):
    refused = refusal({"Name": "ab", "Count": 0, member: value})  # Count 0 alone: a violation
    assert (refused.code, refused.message) == ("SerializationException", message)


def test_a_pattern_python_cannot_compile_is_skipped_and_counted():
    shapes.check_against(SYNTHETIC, "Put", {"Name": "ab", "Word": "1234"})
    assert r"\p{L}+" in shapes.uncompiled_patterns()


# -- every intercepted operation ----------------------------------------------------------------


def test_every_intercepted_operation_is_checked_against_the_service_model(cloud):
    routes = [route for service in cloud.services for route in service.routes()]
    names = [route.name for route in routes]
    assert shapes.validated_operations(routes) == names
    assert len(names) >= 16  # SageMaker 9, SSM 5, IAM 2


def test_checking_a_create_training_job_costs_well_under_a_millisecond():
    request = training_request("cost-1", {"a": "b"}, [{"Name": "loss", "Regex": "loss: (.*)"}])
    shapes.check("sagemaker", "CreateTrainingJob", request)  # compiled once
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        shapes.check("sagemaker", "CreateTrainingJob", request)
    assert (time.perf_counter() - start) / runs < 1e-3


# -- SageMaker, through boto3 ----------------------------------------------------------------


def _refused(call, **request) -> dict:
    with pytest.raises(ClientError) as refused:
        call(**request)
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error


def _with_channels(request: dict, *names: str) -> dict:
    source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/tiny"}}
    request["InputDataConfig"] = [{"ChannelName": n, "DataSource": source} for n in names]
    return request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["ResourceConfig"].update(InstanceType="ml.bogus.xlarge"),
         "Value 'ml.bogus.xlarge' at 'resourceConfig.instanceType' failed to satisfy constraint: "
         "Member must satisfy enum value set: [ml.m4.xlarge, "),
        (lambda r: r.update(RoleArn="not-an-arn"),
         "Value 'not-an-arn' at 'roleArn' failed to satisfy constraint: Member must satisfy "
         "regular expression pattern: arn:aws"),
        (lambda r: r["ResourceConfig"].update(VolumeSizeInGB=0),
         "Value '0' at 'resourceConfig.volumeSizeInGB' failed to satisfy constraint: "
         "Member must have value greater than or equal to 1"),
        (lambda r: r["ResourceConfig"].update(InstanceCount=0),
         "Value '0' at 'resourceConfig.instanceCount' failed to satisfy constraint"),
        (lambda r: r["StoppingCondition"].update(MaxRuntimeInSeconds=0),
         "1 validation error detected: Value '0' at 'stoppingCondition.maxRuntimeInSeconds' "
         "failed to satisfy constraint: Member must have value greater than or equal to 1"),
        (lambda r: r["AlgorithmSpecification"].pop("TrainingInputMode"),
         "1 validation error detected: Value null at 'algorithmSpecification.trainingInputMode' "
         "failed to satisfy constraint: Member must not be null"),
        (lambda r: r["AlgorithmSpecification"].update(TrainingInputMode="Streaming"),
         "Value 'Streaming' at 'algorithmSpecification.trainingInputMode' failed to satisfy "
         "constraint: Member must satisfy enum value set: [Pipe, File, FastFile]"),
        (lambda r: _with_channels(r, "train", "validation", "train"),
         "Channel names must be unique: InputDataConfig repeats channel 'train'"),
        (lambda r: r.pop("ResourceConfig"), "ResourceConfig is required"),
        (lambda r: r.pop("AlgorithmSpecification"), "AlgorithmSpecification is required"),
        (lambda r: r["OutputDataConfig"].update(S3OutputPath="https://example.com/models"),
         "OutputDataConfig.S3OutputPath must be an s3:// URI locally"),
        (lambda r: r["AlgorithmSpecification"]["MetricDefinitions"].append(
            {"Name": "bad", "Regex": "loss: ("}), "metric bad: bad Regex"),
    ],
)  # fmt: skip
def test_create_training_job_refuses_what_aws_refuses(staged, change, message):
    sm = staged.cloud_client("sagemaker", UNCHECKED)
    request = training_request("refused-1", {}, [{"Name": "loss", "Regex": "loss: (.*)"}])
    change(request)
    error = _refused(sm.create_training_job, **request)
    assert error["Code"] == "ValidationException"
    assert message in error["Message"]
    error = _refused(sm.describe_training_job, TrainingJobName="refused-1")
    assert error["Message"] == "Requested resource not found."  # nothing was created


def test_a_wrongly_typed_member_is_a_serialization_exception(staged):
    sm = staged.cloud_client("sagemaker", UNCHECKED)
    request = training_request("typed-1", {}, [])
    request["ResourceConfig"]["InstanceCount"] = "1"
    error = _refused(sm.create_training_job, **request)
    assert error["Code"] == "SerializationException"
    assert error["Message"] == "STRING_VALUE can not be converted to an Integer"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"MaxResults": 0}, "Value '0' at 'maxResults' failed to satisfy constraint: "
                            "Member must have value greater than or equal to 1"),
        ({"MaxResults": 101}, "Value '101' at 'maxResults' failed to satisfy constraint: "
                              "Member must have value less than or equal to 100"),
        ({"StatusEquals": "Running"}, "Value 'Running' at 'statusEquals' failed to satisfy "
                                      "constraint: Member must satisfy enum value set: "
                                      "[InProgress, Completed, Failed, Stopping, Stopped, "
                                      "Deleting]"),
    ],
)  # fmt: skip
def test_list_training_jobs_refuses_what_aws_refuses(staged, request_, message):
    sm = staged.cloud_client("sagemaker", UNCHECKED)
    error = _refused(sm.list_training_jobs, **request_)
    assert error["Code"] == "ValidationException"
    assert error["Message"] == f"1 validation error detected: {message}"


def test_a_tuning_job_definition_is_checked_as_part_of_its_request(staged):
    sm = staged.cloud_client("sagemaker", UNCHECKED)
    definition = training_request("x", {}, [{"Name": "loss", "Regex": "loss: (.*)"}])
    del definition["TrainingJobName"], definition["HyperParameters"]
    del definition["StoppingCondition"]  # optional in CreateTrainingJob, required here
    definition["ResourceConfig"]["InstanceType"] = "ml.bogus.xlarge"
    request = {
        "HyperParameterTuningJobName": "hpo-refused-1",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
        },
        "TrainingJobDefinition": definition,
    }
    error = _refused(sm.create_hyper_parameter_tuning_job, **request)
    assert error["Message"].startswith("2 validation errors detected: ")
    assert "Value null at 'trainingJobDefinition.stoppingCondition'" in error["Message"]
    assert "at 'trainingJobDefinition.resourceConfig.instanceType'" in error["Message"]


def test_a_training_job_without_a_stopping_condition_runs_with_awss_one_day(staged):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    request = _with_channels(script_job(s3, "default-stop-1", "print('hello')"), "training")
    del request["StoppingCondition"]
    sm.create_training_job(**request)
    job = wait_training(sm, "default-stop-1", timeout=120)
    validate_response(sm, "DescribeTrainingJob", job)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}


def test_a_tuning_definition_may_give_its_resources_as_hyper_parameter_tuning_resources():
    definition = training_request("x", {}, [])
    del definition["TrainingJobName"]
    resources = definition.pop("ResourceConfig")
    definition["HyperParameterTuningResourceConfig"] = {
        **resources,
        "AllocationStrategy": "Prioritized",
    }
    definition["StoppingCondition"] = {}
    validate.training_job(definition, definition=True)
    assert definition["ResourceConfig"] == resources
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    with pytest.raises(
        InvalidRequest, match="ResourceConfig or HyperParameterTuningResourceConfig"
    ):
        validate.training_job(
            {**definition, "ResourceConfig": None, "HyperParameterTuningResourceConfig": None},
            definition=True,
        )


# -- SSM and IAM ---------------------------------------------------------------------------------


def test_ssm_send_command_is_checked_against_the_service_model(staged):
    ssm = staged.cloud_client("ssm", UNCHECKED)
    error = _refused(
        ssm.send_command,
        InstanceIds=[TRAINING_HOST_ID],
        DocumentName="AWS RunShellScript",
        TimeoutSeconds=5,
        Parameters={"commands": ["true"]},
    )
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        "2 validation errors detected: Value 'AWS RunShellScript' at 'documentName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9_\\-.:/]{3,128}$; Value '5' at 'timeoutSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 30"
    )


def test_iam_query_parameters_are_checked_against_the_service_model(staged):
    iam = staged.cloud_client("iam", UNCHECKED)
    error = _refused(iam.simulate_principal_policy, PolicySourceArn=ROLE, MaxItems=0)
    assert error["Code"] == "ValidationError"
    assert error["Message"] == (
        "2 validation errors detected: Value null at 'actionNames' failed to satisfy "
        "constraint: Member must not be null; Value '0' at 'maxItems' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    )
    allowed = iam.simulate_principal_policy(PolicySourceArn=ROLE, ActionNames=["s3:GetObject"])
    assert allowed["EvaluationResults"][0]["EvalDecision"] == "allowed"
