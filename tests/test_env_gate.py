"""When an existing environment stack may be updated (issue #11 scope 7, Copilot's --deploy-env /
--no-deploy-env and its `prod` flag): stages/env.gated over a stand-in session."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from copilot_doit import cli
from copilot_doit.errors import StageFailed
from copilot_doit.registry import Env
from copilot_doit.stages.base import Status
from copilot_doit.stages.env import gated

WOULD_RUN = Status(True, "template changed", None, None, {"parameters": {}})


def session(deploy_env=None, prod=False, confirmed=()):
    entry = Env(app="a", name="prod", region="us-east-1", account_id="1", prod=prod)
    target = SimpleNamespace(copilot_env=lambda app, env: entry)
    return SimpleNamespace(opts=SimpleNamespace(deploy_env=deploy_env, prod_confirmed=confirmed),
                           target=lambda env: target, ws=SimpleNamespace(app="a"))


LIVE = {"status": "UPDATE_COMPLETE", "outputs": {"ClusterId": "c"}, "tags": {"copilot-doit:deploy-key": "k"}}


def test_by_default_copilot_doits_own_stack_is_updated():
    assert gated(session(), "prod", LIVE, WOULD_RUN) is WOULD_RUN


def test_no_deploy_env_keeps_an_existing_stack_and_says_why():
    st = gated(session(deploy_env=False), "prod", LIVE, WOULD_RUN)
    assert not st.run and st.result["outputs"] == {"ClusterId": "c"}
    assert st.reason == "--no-deploy-env: stack a-prod is used as it is, not updated (template changed)"


def test_a_missing_stack_is_created_even_with_no_deploy_env():
    assert gated(session(deploy_env=False), "prod", None, WOULD_RUN) is WOULD_RUN


def test_a_prod_environment_needs_deploy_env_or_a_yes():
    st = gated(session(prod=True), "prod", LIVE, WOULD_RUN)
    assert not st.run and "is marked prod in Copilot's application" in st.reason and "--deploy-env" in st.reason
    assert gated(session(prod=True, deploy_env=True), "prod", LIVE, WOULD_RUN) is WOULD_RUN
    assert gated(session(prod=True, confirmed=("prod",)), "prod", LIVE, WOULD_RUN) is WOULD_RUN
    assert gated(session(prod=True, confirmed=("test",)), "prod", LIVE, WOULD_RUN).run is False


def test_a_broken_stack_is_not_passed_off_as_usable():
    with pytest.raises(StageFailed, match="stack a-prod is ROLLBACK_COMPLETE and cannot serve the workloads"):
        gated(session(deploy_env=False), "prod", dict(LIVE, status="ROLLBACK_COMPLETE"), WOULD_RUN)


def test_an_up_to_date_stack_is_left_alone_whatever_the_flags():
    up = Status(False, "same", None, {"outputs": {}}, {})
    assert gated(session(deploy_env=False, prod=True), "prod", LIVE, up) is up


def test_the_flags_reach_doit_as_variables():
    p = cli.deploy_parser("copilot-doit deploy")
    assert "deploy-env=0" in cli.doit_argv("deploy", p.parse_args(["-e", "prod", "--no-deploy-env"]))
    assert "deploy-env=1" in cli.doit_argv("deploy", p.parse_args(["-e", "prod", "--deploy-env"]))
    a = p.parse_args(["-e", "prod"])
    a.prod_confirmed = ["prod"]
    argv = cli.doit_argv("deploy", a)
    assert "prod-confirmed=prod" in argv and not any(x.startswith("deploy-env") for x in argv)
    assert cli.main(["deploy", "-e", "prod", "--deploy-env", "--no-deploy-env"]) == 2
