"""The local cloud: one process on 127.0.0.1 that stands in for the AWS APIs dogops uses.

It fronts an in-process moto server (S3, IAM, STS, CloudWatch Logs and the rest, as records)
and intercepts the operations that need real behaviour: SageMaker training and tuning jobs run
the submitted code for real. Clients reach it only through boto3's endpoint settings.
"""
