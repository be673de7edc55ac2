"""`copilot-doit svc delete` / `job delete` (copilot_doit/delete.py) and plan's orphan listing.

Unit tests on stubbed clients (refusals, DELETE_FAILED, a job's tasks, the command line's usage errors)
and the AWS target's code path against the moto server (stacks, ECR repository, Copilot's SSM entries),
as tests/test_aws_target.py does."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from copilot_doit import delete, plan as plan_mod, stacks
from copilot_doit.errors import StageFailed, UserError
from copilot_doit.workspace import EnvSettings, Workspace


# --- stubbed clients ------------------------------------------------------------------------------------
def _not_found(name: str):
    from botocore.exceptions import ClientError
    return ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}},
                       "DescribeStacks")


class FakeCfn:
    """DescribeStacks answers in turn (None: no stack); records DeleteStack calls."""

    def __init__(self, answers: list, events: list | None = None):
        self.answers = list(answers)
        self.events = events or []
        self.deleted: list[dict] = []

    def describe_stacks(self, StackName):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            raise _not_found(StackName)
        return {"Stacks": [answer]}

    def delete_stack(self, **kwargs):
        self.deleted.append(kwargs)

    def describe_stack_events(self, StackName):
        return {"StackEvents": self.events}


class FakeEcs:
    def __init__(self, pages: list[list[str]]):
        self.pages = pages
        self.stopped: list[tuple[str, str]] = []
        self.listed: list[dict] = []

    def list_tasks(self, **kwargs):
        self.listed.append(kwargs)
        i = int(kwargs.get("nextToken") or 0)
        return {"taskArns": self.pages[i], **({"nextToken": str(i + 1)} if i + 1 < len(self.pages) else {})}

    def stop_task(self, cluster, task, reason):
        self.stopped.append((cluster, task))


class FakeTarget:
    def __init__(self, **clients):
        self.clients = clients
        self.settings = EnvSettings(name="test", target="aws", region="us-east-1")

    def client(self, service):
        return self.clients[service]

    def copilot_env(self, app, env):
        return None

    def copilot_app(self, app):
        return None

    def stacks_changed(self):
        pass


def _stack(name: str, status: str, tags: dict, outputs: dict | None = None) -> dict:
    return {"StackName": name, "StackId": f"arn:aws:cloudformation:us-east-1:1:stack/{name}/x", "StackStatus": status,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()]}


OURS = {stacks.KEY_TAG: "k" * 32, "copilot-application": "demo", "copilot-environment": "test",
        "copilot-service": "api"}


def test_delete_failed_is_reported_with_cloudformation_reasons():
    now = datetime.now(timezone.utc)
    cfn = FakeCfn([_stack("demo-test-api", "UPDATE_COMPLETE", OURS), _stack("demo-test-api", "DELETE_FAILED", OURS)],
                  events=[{"EventId": "1", "LogicalResourceId": "Bucket", "ResourceStatus": "DELETE_FAILED",
                           "ResourceStatusReason": "The bucket you tried to delete is not empty", "Timestamp": now}])
    with pytest.raises(StageFailed, match=r"stack demo-test-api ended DELETE_FAILED: Bucket: The bucket you tried "
                                          r"to delete is not empty .*run the delete again"):
        delete.delete_stack(FakeTarget(cloudformation=cfn), "demo-test-api", "demo", "test", "api", timeout=5)
    assert cfn.deleted == [{"StackName": "arn:aws:cloudformation:us-east-1:1:stack/demo-test-api/x"}]


def test_a_stack_another_operation_holds_or_another_tool_made_is_not_deleted():
    busy = FakeCfn([_stack("demo-test-api", "UPDATE_IN_PROGRESS", OURS)])
    with pytest.raises(StageFailed, match="stack demo-test-api is UPDATE_IN_PROGRESS: another operation holds it"):
        delete.delete_stack(FakeTarget(cloudformation=busy), "demo-test-api", "demo", "test", "api", timeout=5)
    foreign = FakeCfn([_stack("demo-test-api", "CREATE_COMPLETE", {"owner": "terraform"})])
    with pytest.raises(StageFailed, match="created by neither copilot-doit nor Copilot"):
        delete.delete_stack(FakeTarget(cloudformation=foreign), "demo-test-api", "demo", "test", "api", timeout=5)
    assert busy.deleted == [] and foreign.deleted == []


def test_a_deletion_in_progress_is_waited_for_not_started_again():
    cfn = FakeCfn([_stack("demo-test-api", "DELETE_IN_PROGRESS", OURS),
                   _stack("demo-test-api", "DELETE_COMPLETE", OURS), None])
    assert delete.delete_stack(FakeTarget(cloudformation=cfn), "demo-test-api", "demo", "test", "api", timeout=5)
    assert cfn.deleted == []


def test_job_tasks_are_stopped_in_the_environment_cluster_every_page():
    cfn = FakeCfn([_stack("demo-test", "UPDATE_COMPLETE", {}, {"ClusterId": "demo-test-Cluster-1"})])
    ecs = FakeEcs([["t1", "t2"], ["t3"]])
    assert delete.stop_job_tasks(FakeTarget(cloudformation=cfn, ecs=ecs), "demo", "test", "mailer") == 3
    assert ecs.stopped == [("demo-test-Cluster-1", t) for t in ("t1", "t2", "t3")]
    assert {(k["family"], k["desiredStatus"]) for k in ecs.listed} == {("demo-test-mailer", "RUNNING")}
    no_env = FakeCfn([None])
    assert delete.stop_job_tasks(FakeTarget(cloudformation=no_env, ecs=FakeEcs([["x"]])), "demo", "test", "mailer") == 0


def test_kind_follows_the_manifest_and_any_kind_when_it_is_gone():
    with pytest.raises(UserError, match="'mailer' is a Scheduled Job, not a service.*job delete -n mailer"):
        delete.check_kind("svc", "mailer", "Scheduled Job")
    with pytest.raises(UserError, match="'api' is a Backend Service, not a job.*svc delete -n api"):
        delete.check_kind("job", "api", "Backend Service")
    delete.check_kind("svc", "api", "Backend Service")
    delete.check_kind("job", "gone", None)
    delete.check_kind("svc", "gone", None)


def test_questions_are_copilots():
    d = delete.Deletion("svc", "demo", "api", ["test", "prod"], True, False, None)
    assert delete.question(d) == "Are you sure you want to delete api from application demo?"
    d = delete.Deletion("job", "demo", "mailer", ["prod"], False, False, None)
    assert delete.question(d) == "Are you sure you want to delete job mailer from environment prod?"


# --- the command line: usage errors before anything is looked at ---------------------------------------
def test_usage_errors_exit_2_before_any_call(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no workspace here: these stop before one is read
    assert delete.main("svc", ["-n", "api", "-e", "test"]) == 2          # pytest's stdin is no terminal
    assert "pass --yes to delete without asking" in capsys.readouterr().err
    assert delete.main("svc", ["-n", "api", "-e", "test", "--delete-repo", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "--delete-repo deletes the repository" in err and "only without -e" in err
    assert delete.main("job", ["-h"]) == 0
    out = capsys.readouterr().out
    assert "copilot-doit job delete [flags]" in out and "--yes" in out and "--delete-repo" in out
    with pytest.raises(SystemExit) as exc:
        delete.main("svc", ["--bogus"])
    assert exc.value.code == 2
    assert delete.main("svc", ["-n", "api", "--yes"]) == 1                # no workspace: one error line
    assert "no workspace found" in capsys.readouterr().err


def _tiny_workspace(root: Path) -> None:
    (root / "copilot" / "environments" / "test").mkdir(parents=True)
    (root / "copilot" / ".workspace").write_text("application: demo\n")
    (root / "copilot" / "environments" / "test" / "manifest.yml").write_text("name: test\ntype: Environment\n")
    (root / "copilot" / "copilot-doit.yml").write_text("environments:\n  test: {target: local}\n")


@pytest.mark.parametrize("answer, code, said", [("n", 0, "svc delete cancelled - no changes made"),
                                                ("", 0, "svc delete cancelled - no changes made"),
                                                ("y", 0, "EXECUTED"), (EOFError, 1, "nothing deleted")])
def test_a_terminal_is_asked_copilots_question_first(answer, code, said, capsys, monkeypatch, tmp_path):
    from copilot_doit import prompts
    _tiny_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPILOT_DOIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(prompts, "interactive", lambda: True)
    found = delete.Deletion("svc", "demo", "gone", ["test"], False, False, None,
                            stacks=[delete.EnvStack("test", "demo-test-gone", "UPDATE_COMPLETE", stacks.COPILOT)])
    monkeypatch.setattr(delete, "find", lambda ws, target_of, kind, name, envs, whole, delete_repo: found)
    monkeypatch.setattr(delete, "execute", lambda d, target_of: print("EXECUTED"))
    asked: list[str] = []

    def ask(question):
        asked.append(question)
        if answer is EOFError:
            raise EOFError
        return answer
    monkeypatch.setattr("builtins.input", ask)
    assert delete.main("svc", ["-n", "gone", "-e", "test"]) == code
    out, err = capsys.readouterr()
    assert asked == ["Are you sure you want to delete gone from environment test? [y/N] "]
    assert said in out + err and ("EXECUTED" in out) == (answer == "y")
    assert "stack demo-test-gone (environment test, UPDATE_COMPLETE, deployed by Copilot): deleted" in out


def test_cli_dispatches_svc_and_job_delete(capsys, monkeypatch, tmp_path):
    from copilot_doit import cli
    monkeypatch.chdir(tmp_path)
    assert cli.main(["job", "delete", "-n", "mailer"]) == 2
    assert "copilot-doit job delete: " in capsys.readouterr().err


# --- plan: orphans ---------------------------------------------------------------------------------------
def _listed(tags: dict, status: str = "UPDATE_COMPLETE") -> dict:
    return {"status": status, "tags": tags}


def test_orphans_are_workload_stacks_of_this_app_and_env_without_a_manifest():
    tags = {"copilot-application": "demo", "copilot-environment": "test"}
    listing = {
        "demo-test-gone": _listed({**tags, "copilot-service": "gone", stacks.KEY_TAG: "k"}),
        "demo-test-old": _listed({**tags, "copilot-service": "old"}, "UPDATE_ROLLBACK_COMPLETE"),  # Copilot's
        "demo-test-api": _listed({**tags, "copilot-service": "api"}),                 # still in the workspace
        "demo-test": _listed(tags),                                                    # the env stack
        "demo-test-gone-AddonsStack-1X": _listed({**tags, "copilot-service": "gone"}),  # nested: goes with it
        "other-test-gone": _listed({**tags, "copilot-application": "other", "copilot-service": "gone"}),
        "demo-prod-gone": _listed({**tags, "copilot-environment": "prod", "copilot-service": "gone"}),
        "demo-test-x": _listed({"copilot-service": "x"}),                              # not tagged for the app
    }
    found = plan_mod.find_orphans("demo", ["api"], "test", listing)
    assert [(o.stack, o.workload, o.owner, o.status) for o in found] == [
        ("demo-test-gone", "gone", stacks.COPILOT_DOIT, "UPDATE_COMPLETE"),
        ("demo-test-old", "old", stacks.COPILOT, "UPDATE_ROLLBACK_COMPLETE")]


def test_orphans_in_every_format_without_changing_the_exit_code():
    p = plan_mod.Plan("demo", stages=[plan_mod.StagePlan("deploy:api@test", "deploy", "api", "test", False, "same")],
                      orphans=[plan_mod.OrphanPlan("demo-test-gone", "test", "gone", "UPDATE_COMPLETE",
                                                   "copilot-doit")])
    assert p.changes is False
    text = plan_mod.as_text(p)
    assert ("orphan: stack demo-test-gone (workload gone is no longer in the workspace; "
            "`copilot-doit svc delete -n gone -e test` removes it)") in text
    assert "do not change the exit code (0 = nothing to deploy)" in text
    doc = json.loads(plan_mod.as_json(p))
    assert doc["orphans"] == [{"stack": "demo-test-gone", "env": "test", "workload": "gone",
                               "status": "UPDATE_COMPLETE", "owner": "copilot-doit",
                               "command": "copilot-doit svc delete -n gone -e test"}]
    md = plan_mod.as_markdown(p)
    assert "| `demo-test-gone` | orphan | workload `gone` is no longer in the workspace;" in md
    assert "nothing to deploy" in md
    assert "orphan" not in plan_mod.as_text(plan_mod.Plan("demo"))
    assert json.loads(plan_mod.as_json(plan_mod.Plan("demo")))["orphans"] == []


# --- the AWS target's code path against the moto server -------------------------------------------------
def _endpoint_target(url: str, env: str):
    from copilot_doit.targets.aws import AwsTarget

    class EndpointTarget(AwsTarget):
        """AwsTarget with only the endpoint and test credentials swapped in."""

        def _testing(self):
            import boto3
            return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=self.settings.region)

        def session(self):
            if self._session is None:
                self._session = self._testing()
            return self._session

        def base_session(self):  # the registry's session, where the target has one
            return self.session()

        def client_kwargs(self):
            return {"endpoint_url": url}

    return EndpointTarget(EnvSettings(name=env, target="aws", region="us-east-1", account="123456789012"), "unused")


TEMPLATE = json.dumps({"Resources": {"L": {"Type": "AWS::Logs::LogGroup"}}})


class Emulated:
    """An application `app` with workload stacks in test and prod, its repository and Copilot's entries."""

    def __init__(self, url: str, tmp: Path):
        self.url = url
        self.app = f"d{uuid.uuid4().hex[:8]}"
        self.targets: dict = {}
        setup = _endpoint_target(url, "setup")  # the test's own clients, not a run's
        self.ws = Workspace(root=tmp, dir=tmp / "copilot", app=self.app, workloads=[], environments=["test", "prod"],
                            settings={e: _endpoint_target(url, e).settings for e in ("test", "prod")})
        self.cfn = setup.client("cloudformation")
        self.ssm = setup.client("ssm")
        self.ecr = setup.client("ecr")

    def target_of(self, env: str):
        """One target per environment per run, bound as the command binds it (it reads Copilot's entries
        once per run: a test that changes them calls new_run)."""
        if env not in self.targets:
            self.targets[env] = _endpoint_target(self.url, env)
            self.targets[env].use_copilot_region(self.app)
        return self.targets[env]

    def new_run(self) -> None:
        self.targets = {}

    def stack(self, env: str, name: str, tags: dict | None = None) -> str:
        stack = f"{self.app}-{env}-{name}"
        if tags is None:
            tags = {"copilot-application": self.app, "copilot-environment": env, "copilot-service": name,
                    stacks.KEY_TAG: "0" * 32}
        self.cfn.create_stack(StackName=stack, TemplateBody=TEMPLATE,
                              Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return stack

    def exists(self, stack: str) -> bool:
        return stacks._describe(self.cfn, stack) is not None

    def copilot_app(self, workload: str | None = None, entry_app: str | None = None) -> None:
        self.ssm.put_parameter(Name=f"/copilot/applications/{self.app}", Type="String",
                               Value=json.dumps({"name": self.app, "account": "123456789012", "domain": "",
                                                 "domainHostedZoneID": "", "version": "1.0"}))
        if workload:
            self.ssm.put_parameter(Name=f"/copilot/applications/{self.app}/components/{workload}", Type="String",
                                   Value=json.dumps({"app": entry_app or self.app, "name": workload,
                                                     "type": "Backend Service"}))

    def entry(self, workload: str) -> bool:
        try:
            self.ssm.get_parameter(Name=f"/copilot/applications/{self.app}/components/{workload}")
            return True
        except self.ssm.exceptions.ParameterNotFound:
            return False

    def repo(self, workload: str) -> bool:
        try:
            self.ecr.describe_repositories(repositoryNames=[f"{self.app}/{workload}"])
            return True
        except self.ecr.exceptions.RepositoryNotFoundException:
            return False


@pytest.fixture
def emulated(services_up, tmp_path):
    return Emulated(services_up.moto_url, tmp_path)


@pytest.mark.e2e
def test_delete_from_one_environment_keeps_the_app_entries(emulated, capsys):
    e = emulated
    test_stack, prod_stack = e.stack("test", "api"), e.stack("prod", "api")
    e.ecr.create_repository(repositoryName=f"{e.app}/api")
    e.copilot_app("api")
    d = delete.find(e.ws, e.target_of, "svc", "api", ["test"], whole=False)
    assert [(s.env, s.status, s.owner) for s in d.stacks] == [("test", "CREATE_COMPLETE", stacks.COPILOT_DOIT)]
    assert d.repos == d.kept_repos == d.entries == []             # -e: the application is not looked at
    delete.execute(d, e.target_of)
    assert not e.exists(test_stack) and e.exists(prod_stack) and e.repo("api") and e.entry("api")
    assert "Deleted service api from environment test." in capsys.readouterr().out


@pytest.mark.e2e
def test_delete_from_the_application_in_copilots_order(emulated, capsys):
    e = emulated
    test_stack = e.stack("test", "api")
    prod_stack = e.stack("prod", "api", {"copilot-application": e.app, "copilot-environment": "prod",
                                         "copilot-service": "api"})        # Copilot deployed this one
    e.ecr.create_repository(repositoryName=f"{e.app}/api")
    e.copilot_app("api")
    kept = delete.find(e.ws, e.target_of, "svc", "api", ["test", "prod"], whole=True)
    assert [p.where for p in kept.kept_repos] == ["aws us-east-1 account 123456789012"] and kept.repos == []
    assert "ECR repository " + f"{e.app}/api" + " (aws us-east-1 account 123456789012): kept" in delete.summary(kept)
    d = delete.find(e.ws, e.target_of, "svc", "api", ["test", "prod"], whole=True, delete_repo=True)
    assert [(s.env, s.owner) for s in d.stacks] == [("test", stacks.COPILOT_DOIT), ("prod", stacks.COPILOT)]
    assert len(d.repos) == 1 and len(d.entries) == 1               # one account and region: once each
    text = delete.summary(d)
    assert f"Copilot's SSM entry /copilot/applications/{e.app}/components/api" in text and "removed" in text
    assert "still in the workspace" not in text
    calls: list[str] = []
    for t in (e.target_of("test"), e.target_of("prod")):
        for client in (t.client("cloudformation"), t.client("ecr"), t.registry_client()):
            client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name)
                                        if model.name.startswith("Delete") else None)
    delete.execute(d, e.target_of)
    assert calls == ["DeleteStack", "DeleteStack", "DeleteRepository", "DeleteParameter"], calls
    assert not e.exists(test_stack) and not e.exists(prod_stack) and not e.repo("api") and not e.entry("api")
    assert e.ssm.get_parameter(Name=f"/copilot/applications/{e.app}")  # the application stays
    out = capsys.readouterr().out
    assert out.index("Deleted service api from environment prod.") < out.index(
        "Deleted service api from application " + e.app + ".")


@pytest.mark.e2e
def test_a_foreign_stack_stops_everything_before_any_deletion(emulated):
    e = emulated
    test_stack = e.stack("test", "api")
    e.stack("prod", "api", {"managed-by": "terraform"})
    with pytest.raises(StageFailed, match=f"stack {e.app}-prod-api exists but was created by neither"):
        delete.find(e.ws, e.target_of, "svc", "api", ["test", "prod"], whole=True)
    assert e.exists(test_stack)


@pytest.mark.e2e
def test_unknown_workload_and_an_entry_of_another_app(emulated):
    e = emulated
    with pytest.raises(UserError, match="no service named 'nope': it is not in the workspace"):
        delete.find(e.ws, e.target_of, "svc", "nope", ["test", "prod"], whole=True)
    e.copilot_app("gone", entry_app="someone-else")  # an entry at our path that names another application
    e.stack("test", "gone")
    e.new_run()
    d = delete.find(e.ws, e.target_of, "job", "gone", ["test", "prod"], whole=True)
    assert d.entries == [] and "names application 'someone-else'" in delete.summary(d)
    delete.execute(d, e.target_of)
    assert e.entry("gone")                            # left alone
    assert delete.stop_job_tasks(e.target_of("test"), e.app, "test", "gone") == 0  # no env stack, no cluster


@pytest.mark.e2e
def test_copilot_env_execution_role_is_passed_to_delete_stack(emulated):
    e = emulated
    stack = e.stack("test", "api")
    e.copilot_app()
    role = "arn:aws:iam::123456789012:role/demo-test-CFNExecutionRole"
    e.ssm.put_parameter(Name=f"/copilot/applications/{e.app}/environments/test", Type="String",
                        Value=json.dumps({"app": e.app, "name": "test", "region": "us-east-1",
                                          "accountID": "123456789012", "registryURL": "", "executionRoleARN": role,
                                          "managerRoleARN": ""}))
    target = e.target_of("test")
    seen: list = []
    target.client("cloudformation").meta.events.register(
        "before-parameter-build.cloudformation.DeleteStack", lambda params, **_: seen.append(params.get("RoleARN")))
    assert delete.delete_stack(target, stack, e.app, "test", "api", timeout=30)
    assert seen == [role] and not e.exists(stack)
