"""Stack states a deploy must start from (issue #10 scope 3), injected as recorded CloudFormation answers,
and on the emulator where it can produce them (REVIEW_IN_PROGRESS from an unexecuted change set)."""
from __future__ import annotations

import types

import pytest
from botocore.exceptions import ClientError

from copilot_doit import stacks
from copilot_doit.errors import StageFailed

NAME = "app-test-svc"
KEY = "k" * 32


class RecordedCfn:
    """DescribeStacks answers in sequence (the last one repeats); every call is recorded."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[tuple[str, dict]] = []

    def _stack(self, status, key=KEY, params=None, sid="id-1"):
        return {"StackName": NAME, "StackId": sid, "StackStatus": status,
                "Tags": [{"Key": stacks.KEY_TAG, "Value": key}],
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {"P": "1"}).items()]}

    def describe_stacks(self, StackName):
        self.calls.append(("DescribeStacks", {"StackName": StackName}))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}},
                              "DescribeStacks")
        return {"Stacks": [self._stack(*answer) if isinstance(answer, tuple) else self._stack(answer)]}

    def list_change_sets(self, StackName):
        self.calls.append(("ListChangeSets", {"StackName": StackName}))
        return {"Summaries": [{"ChangeSetId": "cs-1"}]}

    def delete_change_set(self, **kw):
        self.calls.append(("DeleteChangeSet", kw))

    def delete_stack(self, **kw):
        self.calls.append(("DeleteStack", kw))

    def ops(self):
        return [c[0] for c in self.calls if c[0] != "DescribeStacks"]


def target(wait=0.3):
    return types.SimpleNamespace(in_progress_wait=wait, stuck_stack_hint=" (hint)")


def test_review_in_progress_is_removed_with_its_change_sets():
    cfn = RecordedCfn("REVIEW_IN_PROGRESS", "REVIEW_IN_PROGRESS", None)
    assert stacks.prepare(target(), cfn, NAME, KEY, {"P": "1"}) is None     # then: a CREATE change set
    assert cfn.ops() == ["ListChangeSets", "DeleteChangeSet", "DeleteStack"]


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"])
def test_a_failed_first_create_is_deleted_then_created_again(status):
    cfn = RecordedCfn(status, "DELETE_IN_PROGRESS", "DELETE_COMPLETE", None)
    assert stacks.prepare(target(), cfn, NAME, KEY, {"P": "1"}) is None
    assert cfn.ops() == ["DeleteStack"]
    assert cfn.calls[1][1] == {"StackName": "id-1"}   # by id: the name may already be reused


def test_update_rollback_failed_says_continue_update_rollback():
    with pytest.raises(StageFailed, match=f"continue-update-rollback --stack-name {NAME}"):
        stacks.prepare(target(), RecordedCfn("UPDATE_ROLLBACK_FAILED"), NAME, KEY, {})


def test_update_failed_after_no_rollback_says_rollback_stack():
    with pytest.raises(StageFailed, match=f"rollback-stack --stack-name {NAME}"):
        stacks.prepare(target(), RecordedCfn("UPDATE_FAILED"), NAME, KEY, {})


def test_a_stack_another_run_deploys_is_waited_for_and_an_identical_result_adopted(capsys):
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE")
    out = stacks.prepare(target(wait=5), cfn, NAME, KEY, {"P": "1"})
    assert out["adopted"] and out["status"] == "UPDATE_COMPLETE"
    assert cfn.ops() == []
    assert "another deployment is running" in capsys.readouterr().out


def test_another_runs_different_result_is_updated_not_adopted():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", ("UPDATE_COMPLETE", "other-key"))
    out = stacks.prepare(target(wait=5), cfn, NAME, KEY, {"P": "1"})
    assert out["StackStatus"] == "UPDATE_COMPLETE" and not out.get("adopted")


def test_a_stack_stuck_in_progress_fails_after_the_bound():
    with pytest.raises(StageFailed, match=r"stayed CREATE_IN_PROGRESS for 0s.*\(hint\)"):
        stacks.prepare(target(wait=0.3), RecordedCfn("CREATE_IN_PROGRESS"), NAME, KEY, {})


def test_a_name_listed_twice_keeps_the_unfinished_one():
    from copilot_doit.targets.aws import merge_listed
    listing: dict = {}
    merge_listed(listing, NAME, {"status": "CREATE_COMPLETE"})
    merge_listed(listing, NAME, {"status": "REVIEW_IN_PROGRESS"})
    merge_listed(listing, NAME, {"status": "CREATE_COMPLETE"})
    merge_listed(listing, "gone", {"status": "DELETE_COMPLETE"})
    assert listing == {NAME: {"status": "REVIEW_IN_PROGRESS"}}


@pytest.mark.e2e
def test_an_unexecuted_create_on_the_emulator_is_cleaned_up(workspace):
    from conftest import marks
    ws = workspace
    cfn = ws.client("cloudformation")   # our own create left unexecuted (a failure, a kill): our tags
    stack = f"{ws.app}-test-api"
    tags = {"copilot-application": ws.app, "copilot-environment": "test", "copilot-service": "api",
            "copilot-doit:deploy-key": "0" * 32}
    cfn.create_change_set(StackName=stack, ChangeSetName="left-behind", ChangeSetType="CREATE",
                          TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}',
                          Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"
    out = ws.run("deploy", "name=api", "env=test").stdout
    assert "REVIEW_IN_PROGRESS (a create that never ran): removing it" in out, out
    assert marks(out)["deploy:api@test"] == "."
    live = [s for s in ws.stacks() if s["StackName"] == stack and s["StackStatus"] != "DELETE_COMPLETE"]
    assert [s["StackStatus"] for s in live] == ["CREATE_COMPLETE"], live
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    assert "AWS::ECS::Service" in str(body)
    again = ws.run("deploy", "name=api", "env=test").stdout
    assert marks(again)["deploy:api@test"] == "--", again


def test_update_times_compare_as_instants_across_code_paths():
    """The plain-HTTP path keeps the API's text, boto3's path a datetime's str(): the same instant."""
    assert stacks.same_time("2026-11-27T23:28:21.702578Z", "2026-11-27 23:28:21.702578+00:00")
    assert stacks.same_time("2026-11-27T23:28:21.702Z", "2026-11-27 23:28:21.702000+00:00")
    assert not stacks.same_time("2026-11-27T23:28:21Z", "2026-11-27T23:28:22Z")
    assert not stacks.same_time("garbage", "2026-11-27T23:28:22Z")
