"""The parsed-YAML memo (yamlsrc.Memo): a no-op run answers its manifests from it without PyYAML, and the
cache never holds a value a `${VAR}` brought in — except the application's and environment's names."""
from __future__ import annotations

import pytest

from copilot_doit import yamlsrc

PLAIN = "name: api\ntype: Backend Service\ncount: 2\n"
NAMED = "name: mailer\nvariables:\n  P: /copilot/${COPILOT_APPLICATION_NAME}/${COPILOT_ENVIRONMENT_NAME}/smtp\n"
SECRET = "name: api\nvariables:\n  TOKEN: ${API_TOKEN}\n"


@pytest.fixture
def memo(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlsrc, "_MEMO", None)
    return yamlsrc.use_memo(tmp_path / "yaml-memo.bin")


def _reload(memo_path, monkeypatch):
    """A new run: the memo read from its file."""
    monkeypatch.setattr(yamlsrc, "_MEMO", None)
    return yamlsrc.use_memo(memo_path)


def _no_parsing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("parsed again: not answered from the memo")
    monkeypatch.setattr(yamlsrc, "_parse", refuse)


def test_a_plain_document_is_answered_from_the_memo_in_the_next_run(memo, monkeypatch):
    first = yamlsrc.load("m.yml", PLAIN, {})
    yamlsrc.flush_memo()
    _reload(memo.path, monkeypatch)
    _no_parsing(monkeypatch)
    assert yamlsrc.load("m.yml", PLAIN, {}) == first


def test_the_app_and_env_names_are_kept_and_a_changed_one_is_parsed_again(memo, monkeypatch):
    test_vars = {"COPILOT_APPLICATION_NAME": "demo", "COPILOT_ENVIRONMENT_NAME": "test"}
    data, _ = yamlsrc.load("m.yml", NAMED, test_vars)
    assert data["variables"]["P"] == "/copilot/demo/test/smtp"
    yamlsrc.flush_memo()
    _reload(memo.path, monkeypatch)
    parse = yamlsrc._parse
    _no_parsing(monkeypatch)
    assert yamlsrc.load("m.yml", NAMED, test_vars)[0] == data
    monkeypatch.setattr(yamlsrc, "_parse", parse)
    prod, _ = yamlsrc.load("m.yml", NAMED, dict(test_vars, COPILOT_ENVIRONMENT_NAME="prod"))
    assert prod["variables"]["P"] == "/copilot/demo/prod/smtp"


def test_a_document_that_interpolated_another_variable_is_never_kept(memo, monkeypatch):
    secret = "s3cr3t-value-1234"
    data, _ = yamlsrc.load("m.yml", SECRET, {"API_TOKEN": secret})
    assert data["variables"]["TOKEN"] == secret
    yamlsrc.load("p.yml", PLAIN, {})     # something to write, so the file exists
    yamlsrc.flush_memo()
    assert memo.path.exists() and secret.encode() not in memo.path.read_bytes()
    _reload(memo.path, monkeypatch)
    _no_parsing(monkeypatch)
    with pytest.raises(AssertionError, match="parsed again"):
        yamlsrc.load("m.yml", SECRET, {"API_TOKEN": secret})


def test_a_damaged_memo_is_ignored_and_rewritten(memo, monkeypatch):
    first = yamlsrc.load("m.yml", PLAIN, {})
    yamlsrc.flush_memo()
    raw = bytearray(memo.path.read_bytes())
    raw[-1] ^= 0xFF
    memo.path.write_bytes(bytes(raw))
    again = _reload(memo.path, monkeypatch)
    assert yamlsrc.load("m.yml", PLAIN, {}) == first      # parsed again, same answer
    yamlsrc.flush_memo()
    assert again.path.read_bytes() != bytes(raw)
