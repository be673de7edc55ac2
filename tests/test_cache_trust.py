"""The shared cache's trust model: records are authenticated with the team key, or not trusted (issue 10 #1).

The attack of issue 10: a writer of the bucket edits a package record to point at a template with an extra
`AWS::IAM::User` (uploaded as a perfectly valid content-addressed object) and recomputes the unkeyed
`check`. A reader must never use that record. S3 is an in-memory fake client (no network).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from copilot_doit.cache import Cache, S3Store
from copilot_doit.errors import UserError
from copilot_doit.hashing import Key, canonical_json, digest_value
from copilot_doit.trust import (ENV_VAR, KeySource, TeamKey, key_bytes, key_source_from_config, parse_key_source,
                                record_mac)

KEY = "5f" * 32                          # what `openssl rand -hex 32` prints
OTHER_KEY = "a0" * 32
PKG = Key.of("package/1", {"manifest": "frontend"})


class FakeS3:
    """get_object / put_object / head_object over a dict, with S3's error shape for a missing key."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def _missing(self, op):
        return ClientError({"Error": {"Code": "NoSuchKey", "Message": "missing"}}, op)

    def get_object(self, Bucket, Key, **kw):
        self.calls.append(("get", Key))
        if Key not in self.objects:
            raise self._missing("GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket, Key, Body, **kw):
        self.calls.append(("put", Key))
        self.objects[Key] = Body

    def head_object(self, Bucket, Key, **kw):
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")
        return {"ContentLength": len(self.objects[Key])}

    def record_gets(self):
        return [k for op, k in self.calls if op == "get" and "/actions/" in k]


def runner(tmp_path, name, s3, key: str | None = None, source: KeySource | None = None, factory=None) -> Cache:
    """A checkout with its own (empty) local cache and the shared bucket."""
    environ = {ENV_VAR: key} if key else {}
    store = S3Store("team-cache", "copilot-doit", "111122223333", lambda: s3)
    return Cache(tmp_path / name / "cache", store, TeamKey(source, factory, environ=environ))


def record_key(stage="package", key=PKG):
    return f"copilot-doit/actions/{stage}/{key.hex}.json"


def publish_package(tmp_path, s3, key=KEY) -> tuple[Cache, dict]:
    a = runner(tmp_path, "writer", s3, key)
    good = a.put_object(b"Resources: {Service: {Type: AWS::ECS::Service}}\n")
    rec = a.put_action("package", PKG, {"template": good, "parameters": a.put_json({"p": 1})})
    return a, rec


def forge(s3, with_mac_key: str | None = None) -> str:
    """The attack: an evil template object (valid: named by its digest) and the record edited to name it,
    `check` recomputed, `mac` dropped or made with a key that is not the team's."""
    evil = b"Resources: {Evil: {Type: AWS::IAM::User}}\n"
    from copilot_doit.hashing import digest_bytes
    evil_digest = digest_bytes(evil)
    s3.objects[f"copilot-doit/objects/{evil_digest[:2]}/{evil_digest}"] = evil
    rec = json.loads(s3.objects[record_key()])
    rec["result"]["template"] = evil_digest
    rec.pop("mac", None)
    rec.pop("check")
    rec["check"] = digest_value(rec)
    if with_mac_key:
        rec["mac"] = record_mac(key_bytes(with_mac_key, "test"), rec)
    s3.objects[record_key()] = canonical_json(rec).encode()
    return evil_digest


# --- authenticated mode ------------------------------------------------------------------------------

def test_correctly_signed_s3_record_is_accepted_and_kept(tmp_path, capsys):
    s3 = FakeS3()
    _, rec = publish_package(tmp_path, s3)
    assert "mac" in json.loads(s3.objects[record_key()])
    b = runner(tmp_path, "reader", s3, KEY)
    got = b.get_action("package", PKG)
    assert got["result"] == rec["result"]
    assert (b.root / "actions" / "package" / f"{PKG.hex}.json").exists()     # kept: next time local
    gets = len(s3.record_gets())
    assert b.get_action("package", PKG)["result"] == rec["result"] and len(s3.record_gets()) == gets
    err = capsys.readouterr().err
    assert err.count("shared cache: records are authenticated with the team key from environment variable "
                     f"{ENV_VAR}") == 1, err


def test_forged_s3_record_with_recomputed_check_and_no_mac_is_rejected(tmp_path, capsys):
    s3 = FakeS3()
    publish_package(tmp_path, s3)
    forge(s3)
    b = runner(tmp_path, "reader", s3, KEY)
    assert b.get_action("package", PKG) is None                                # the stage re-renders
    assert not (b.root / "actions" / "package" / f"{PKG.hex}.json").exists()
    assert "is not signed with the team key" in capsys.readouterr().err


def test_forged_s3_record_signed_with_another_key_is_rejected(tmp_path, capsys):
    s3 = FakeS3()
    publish_package(tmp_path, s3)
    forge(s3, with_mac_key=OTHER_KEY)
    b = runner(tmp_path, "reader", s3, KEY)
    assert b.get_action("package", PKG) is None
    assert b.get_action("package", PKG, trust_remote=True) is None          # a key set: MAC or nothing
    assert "is not signed with the team key" in capsys.readouterr().err


def test_signed_record_cannot_be_replayed_under_another_key_or_edited(tmp_path, capsys):
    s3 = FakeS3()
    publish_package(tmp_path, s3)
    other = Key.of("package/1", {"manifest": "api"})
    s3.objects[record_key(key=other)] = s3.objects[record_key()]              # a valid record, moved
    rec = json.loads(s3.objects[record_key()])
    rec["created"] = 0                                                         # any field is covered
    rec.pop("check")
    rec["check"] = digest_value({k: v for k, v in rec.items() if k != "mac"})
    s3.objects[record_key()] = canonical_json(rec).encode()
    b = runner(tmp_path, "reader", s3, KEY)
    assert b.get_action("package", other) is None and b.get_action("package", PKG) is None
    err = capsys.readouterr().err
    assert "is corrupt; rejected" in err and "is not signed with the team key" in err


def test_record_of_a_runner_without_the_key_is_rejected_by_one_with_it(tmp_path):
    s3 = FakeS3()
    publish_package(tmp_path, s3, key=None)
    assert "mac" not in json.loads(s3.objects[record_key()])
    assert runner(tmp_path, "reader", s3, KEY).get_action("package", PKG) is None


# --- local records -----------------------------------------------------------------------------------

def test_forged_local_record_with_a_key_is_discarded_and_the_shared_one_used(tmp_path, capsys):
    s3 = FakeS3()
    a, rec = publish_package(tmp_path, s3)
    path = a.root / "actions" / "package" / f"{PKG.hex}.json"
    local = json.loads(path.read_text())
    local["result"]["template"] = "0" * 32
    local.pop("check")
    local["check"] = digest_value({k: v for k, v in local.items() if k != "mac"})
    path.write_text(canonical_json(local))
    got = a.get_action("package", PKG)
    assert "is not signed with the team key (forged" in capsys.readouterr().err
    assert got["result"] == rec["result"]                                      # the signed shared record
    assert json.loads(path.read_text())["result"] == rec["result"]


def test_forged_local_record_without_remote_is_discarded(tmp_path, capsys):
    c = Cache(tmp_path / "cache", team_key=TeamKey(environ={ENV_VAR: KEY}))
    c.put_action("package", PKG, {"template": "1" * 32})
    path = c.root / "actions" / "package" / f"{PKG.hex}.json"
    rec = json.loads(path.read_text())
    rec["result"]["template"] = "2" * 32
    rec.pop("mac")
    rec.pop("check")
    rec["check"] = digest_value(rec)
    path.write_text(canonical_json(rec))
    assert c.get_action("package", PKG) is None and not path.exists()
    assert "discarded, the stage will run again" in capsys.readouterr().err


def test_local_records_without_a_key_work_as_before(tmp_path, capsys):
    c = Cache(tmp_path / "cache", team_key=TeamKey(environ={}))
    c.put_action("lint", PKG, {"errors": 0})
    rec = c.get_action("lint", PKG)
    assert rec["result"] == {"errors": 0} and "mac" not in rec
    assert capsys.readouterr().err == ""                                       # no remote: no mode line


def test_local_record_written_before_the_key_was_set_is_rederived(tmp_path):
    Cache(tmp_path / "cache", team_key=TeamKey(environ={})).put_action("lint", PKG, {"errors": 0})
    assert Cache(tmp_path / "cache", team_key=TeamKey(environ={ENV_VAR: KEY})).get_action("lint", PKG) is None


# --- unauthenticated mode (no key) -------------------------------------------------------------------

def test_without_a_key_s3_records_are_not_used_nor_fetched(tmp_path, capsys):
    s3 = FakeS3()
    publish_package(tmp_path, s3, key=None)
    b = runner(tmp_path, "reader", s3, None)
    assert b.get_action("package", PKG) is None and b.get_action("lint", PKG) is None
    assert s3.record_gets() == []                                              # not worth a GET
    err = capsys.readouterr().err
    assert err.count("shared cache: no team key") == 1 and "not trusted" in err, err


def test_without_a_key_a_verifying_caller_gets_the_record_but_it_is_not_kept(tmp_path):
    s3 = FakeS3()
    _, rec = publish_package(tmp_path, s3, key=None)
    b = runner(tmp_path, "reader", s3, None)
    got = b.get_action("package", PKG, trust_remote=True)
    assert got["result"] == rec["result"]
    # Kept locally it would later pass for a trusted record of this machine.
    assert not (b.root / "actions" / "package" / f"{PKG.hex}.json").exists()
    assert b.get_action("package", PKG) is None


def test_without_a_key_a_corrupt_s3_record_is_still_rejected_for_a_verifying_caller(tmp_path):
    s3 = FakeS3()
    publish_package(tmp_path, s3, key=None)
    rec = json.loads(s3.objects[record_key()])
    rec["result"]["template"] = "f" * 32                                       # check not recomputed
    s3.objects[record_key()] = canonical_json(rec).encode()
    assert runner(tmp_path, "reader", s3, None).get_action("package", PKG, trust_remote=True) is None


def test_objects_stay_content_verified_in_every_mode(tmp_path, capsys):
    s3 = FakeS3()
    a, rec = publish_package(tmp_path, s3, key=None)
    d = rec["result"]["template"]
    s3.objects[f"copilot-doit/objects/{d[:2]}/{d}"] = b"Resources: {Evil: {Type: AWS::IAM::User}}\n"
    assert runner(tmp_path, "reader", s3, KEY).get_object(d) is None
    assert "does not match its digest; rejected" in capsys.readouterr().err


# --- key sources -------------------------------------------------------------------------------------

class FakeSSM:
    def __init__(self, value=None, error=None):
        self.value, self.error, self.calls = value, error, 0

    def get_parameter(self, Name, WithDecryption):
        self.calls += 1
        assert WithDecryption
        if self.error:
            raise ClientError({"Error": {"Code": self.error}}, "GetParameter")
        return {"Parameter": {"Name": Name, "Value": self.value}}


class FakeSecrets:
    def __init__(self, **out):
        self.out = out

    def get_secret_value(self, SecretId):
        return self.out


def test_key_from_ssm_is_fetched_lazily_once(tmp_path):
    s3, ssm = FakeS3(), FakeSSM(KEY)
    services = []

    def factory(service):
        services.append(service)
        return ssm

    a = runner(tmp_path, "writer", s3, None, KeySource("ssm", "/team/cache-key"), factory)
    assert services == []                                                      # nothing fetched yet
    a.put_action("package", PKG, {"template": "1" * 32})
    a.get_action("package", PKG)
    assert services == ["ssm"] and ssm.calls == 1
    b = runner(tmp_path, "reader", s3, KEY)                                    # same key from the variable
    assert b.get_action("package", PKG)["result"] == {"template": "1" * 32}
    assert "from SSM parameter /team/cache-key" in a.trust_mode()


def test_key_from_secrets_manager_string_or_binary(tmp_path):
    text = TeamKey(KeySource("secretsmanager", "team/key"), lambda s: FakeSecrets(SecretString=KEY), environ={})
    binary = TeamKey(KeySource("secretsmanager", "team/key"), lambda s: FakeSecrets(SecretBinary=bytes.fromhex(KEY)),
                     environ={})
    assert text.get() == binary.get() == bytes.fromhex(KEY)


def test_unreadable_key_source_leaves_records_untrusted_with_a_warning(tmp_path, capsys):
    s3 = FakeS3()
    publish_package(tmp_path, s3)
    b = runner(tmp_path, "reader", s3, None, KeySource("ssm", "/team/cache-key"),
               lambda s: FakeSSM(error="AccessDeniedException"))
    assert b.get_action("package", PKG) is None
    err = capsys.readouterr().err
    assert "SSM parameter /team/cache-key could not be read (AccessDeniedException)" in err
    assert "shared cache: no team key (SSM parameter /team/cache-key could not be read" in err


def test_the_variable_overrides_the_configured_source(tmp_path):
    def factory(service):
        raise AssertionError("SSM must not be called when the variable is set")
    k = TeamKey(KeySource("ssm", "/x"), factory, environ={ENV_VAR: KEY})
    assert k.get() == bytes.fromhex(KEY) and ENV_VAR in k.mode_line()


def test_named_env_source_and_text_keys():
    k = TeamKey(KeySource("env", "TEAM_KEY"), environ={"TEAM_KEY": "correct horse battery staple"})
    assert k.get() == b"correct horse battery staple"
    unset = TeamKey(KeySource("env", "TEAM_KEY"), environ={})
    assert unset.get() is None and "environment variable TEAM_KEY is not set" in unset.mode_line()


def test_too_short_key_is_one_sentence():
    with pytest.raises(UserError) as err:
        TeamKey(environ={ENV_VAR: "abcd"}).get()
    assert str(err.value).startswith(f"the cache key in environment variable {ENV_VAR} is 2 bytes; it needs at least 16")


@pytest.mark.parametrize("value", ["ssm:/x", {}, {"ssm": "/x", "env": "Y"}, {"vault": "x"}, {"ssm": ""}, {"env": 3}])
def test_bad_key_source_in_config_is_a_user_error(value):
    with pytest.raises(UserError) as err:
        parse_key_source(value, file="copilot-doit.yml", line=7)
    assert "cache.s3.hmac_key" in str(err.value) and "copilot-doit.yml:7" in str(err.value)


def test_key_source_from_config():
    assert key_source_from_config({"s3": {"bucket": "b", "hmac_key": {"ssm": "/p"}}}) == KeySource("ssm", "/p")
    assert key_source_from_config({"s3": {"bucket": "b"}}) == KeySource("env", ENV_VAR)
    assert key_source_from_config(None) == KeySource("env", ENV_VAR)


def test_trust_module_does_not_import_boto3():
    out = subprocess.run([sys.executable, "-c", "import sys, copilot_doit.trust, copilot_doit.cache; "
                          "print([m for m in ('boto3', 'botocore') if m in sys.modules])"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out
