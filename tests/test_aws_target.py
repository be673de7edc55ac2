"""The real-AWS target's boto3 code paths (describe, ECR by tag/digest, retag, bucket, upload), run
against the moto server as a stand-in endpoint: the same calls the tool makes on AWS."""
from __future__ import annotations

import json
import uuid

import pytest

from copilot_doit.targets.aws import AwsTarget as Target
from copilot_doit.workspace import EnvSettings

pytestmark = pytest.mark.e2e


class EndpointTarget(Target):
    """aws.Target with only the endpoint swapped: every method under test is the AWS one."""

    def __init__(self, url):
        super().__init__(EnvSettings(name="t", target="aws", region="us-east-1", account="123456789012"), "unused")
        self.url = url

    def session(self):
        import boto3
        if self._session is None:
            self._session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                          region_name="us-east-1")
        return self._session

    def client_kwargs(self):
        return {"endpoint_url": self.url}


@pytest.fixture
def target(services_up):
    return EndpointTarget(services_up.moto_url)


def test_account_check_and_repository(target):
    assert target.account_id() == "123456789012"
    name = f"t{uuid.uuid4().hex[:8]}/svc"
    uri = target.ensure_repository(name, {"copilot-application": "t"})
    assert uri == target.repository_uri(name) == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}"
    assert target.ensure_repository(name, {}) == uri          # idempotent
    assert target.image_digest_in_registry(name, tag="nope") is None


def test_retag_by_manifest_and_lookups_by_tag_and_digest(target):
    name = f"t{uuid.uuid4().hex[:8]}/svc"
    target.ensure_repository(name, {})
    ecr = target.client("ecr")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "1" * 64}, "layers": []})
    digest = "sha256:" + "2" * 64
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="ck-abc", imageDigest=digest,
                  imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json")
    assert target.tag_digest(name, "ck-abc") == digest
    target.retag(name, digest, ["v1", "latest"])
    assert target.tag_digest(name, "v1") == digest and target.tag_digest(name, "latest") == digest
    assert target.image_digest_in_registry(name, digest=digest) == digest
    target.retag(name, digest, ["v1"])                         # already there: no error


def test_bucket_upload_and_stacks_listing(target):
    bucket = target.artifact_bucket(f"a{uuid.uuid4().hex[:6]}")
    assert bucket.startswith("copilot-doit-") and len(bucket) <= 63
    target.ensure_bucket(bucket, {"copilot-application": "a"})
    target.ensure_bucket(bucket, {"copilot-application": "a"})  # exists: fine
    target.upload(bucket, "manual/k.yml", b"body")
    target.upload(bucket, "manual/k.yml", b"body")              # content-addressed: not written again
    assert target.client("s3").get_object(Bucket=bucket, Key="manual/k.yml")["Body"].read() == b"body"
    assert target.object_url(bucket, "k") == f"https://{bucket}.s3.us-east-1.amazonaws.com/k"
    stack = f"s{uuid.uuid4().hex[:8]}"
    target.client("cloudformation").create_stack(
        StackName=stack, Tags=[{"Key": "k", "Value": "v"}],
        TemplateBody=json.dumps({"Resources": {"L": {"Type": "AWS::Logs::LogGroup"}},
                                 "Outputs": {"O": {"Value": {"Ref": "L"}}}}))
    listing = target.describe_stacks()
    assert listing[stack]["status"] == "CREATE_COMPLETE" and listing[stack]["tags"] == {"k": "v"}
    assert "O" in listing[stack]["outputs"]


def test_wrong_account_is_refused_before_anything_changes(services_up):
    t = EndpointTarget(services_up.moto_url)
    t.settings = EnvSettings(name="prod", target="aws", region="us-east-1", account="999999999999")
    from copilot_doit.errors import UserError
    with pytest.raises(UserError, match="credentials are for account 123456789012, but environment 'prod' expects 999999999999"):
        t.account_id()
