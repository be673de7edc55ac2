"""`Cache.verify` (what `copilot-doit cache verify` runs): every object and record checked, bad ones and stray
temp files removed, each removal named (issue 10 #7)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from copilot_doit.cache import Cache
from copilot_doit.hashing import Key, canonical_json, digest_value
from copilot_doit.trust import ENV_VAR, TeamKey

KEY = "5f" * 32


def cache(tmp_path, key: str | None = None) -> Cache:
    return Cache(tmp_path / "cache", team_key=TeamKey(environ={ENV_VAR: key} if key else {}))


def populate(c: Cache) -> dict:
    """A package record with its template, parameters and inputs, and a lint record with its report."""
    pkg_key, lint_key = Key.of("package/1", {"m": 1}), Key.of("lint/1", {"t": 1})
    result = {"template": c.put_object(b"Resources: {}\n"), "parameters": c.put_json({"p": 1}),
              "inputs": c.put_json({"manifest": {}}), "size": 14}
    c.put_action("package", pkg_key, result, task="package:frontend@test")
    c.put_action("lint", lint_key, {"errors": 0, "warnings": 0, "report": c.put_object(b"[]")})
    return {"package": pkg_key, "lint": lint_key, **result}


def record_path(c: Cache, stage: str, k: Key):
    return c.root / "actions" / stage / f"{k.hex}.json"


def object_path(c: Cache, digest: str):
    return c.root / "objects" / digest[:2] / digest


def test_a_sound_cache_is_left_alone(tmp_path):
    c = cache(tmp_path)
    populate(c)
    before = sorted(p for p in c.root.rglob("*") if p.is_file())
    report = c.verify()
    assert report.ok and (report.objects, report.records) == (4, 2) and report.temp_removed == 0
    assert sorted(p for p in c.root.rglob("*") if p.is_file()) == before
    assert report.summary().splitlines() == [
        "checked 4 objects and 2 records (signatures not checked: no team key)",
        "removed 0 corrupt objects, 0 bad records, 0 bad last-key files, 0 stray temp files; the cache is sound"]


def test_an_object_whose_content_does_not_match_its_name_is_removed(tmp_path):
    c = cache(tmp_path)
    e = populate(c)
    object_path(c, e["template"]).write_bytes(b"Resources: {Evil: {Type: AWS::IAM::User}}\n")
    report = c.verify()
    assert not object_path(c, e["template"]).exists()
    rel = f"objects/{e['template'][:2]}/{e['template']}"
    assert (rel, "content does not match its digest") in report.removed
    # ...and the record naming it goes too: it would send the stage looking for a missing object.
    assert report.count_removed("objects") == 1 and report.count_removed("actions") == 1
    assert not record_path(c, "package", e["package"]).exists()
    assert f"removed {rel}: content does not match its digest" in report.summary()


def test_a_file_in_objects_not_named_by_its_digest_is_removed(tmp_path):
    c = cache(tmp_path)
    populate(c)
    stray = c.root / "objects" / "zz" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("x")
    d = c.put_object(b"misplaced")
    moved = c.root / "objects" / "00" / d
    moved.parent.mkdir(parents=True, exist_ok=True)
    object_path(c, d).rename(moved)
    report = c.verify()
    assert not stray.exists() and not moved.exists()
    assert {r for r, _ in report.removed} == {"objects/zz/notes.txt", f"objects/00/{d}"}


def test_a_record_whose_check_fails_is_removed(tmp_path):
    c = cache(tmp_path)
    e = populate(c)
    path = record_path(c, "package", e["package"])
    path.write_text(path.read_text().replace(e["template"], "0" * 32))
    report = c.verify()
    assert not path.exists()
    assert report.removed == [(f"actions/package/{e['package'].hex}.json", "is corrupt")]


def test_a_record_that_does_not_parse_is_removed(tmp_path):
    c = cache(tmp_path)
    e = populate(c)
    path = record_path(c, "lint", e["lint"])
    path.write_text(path.read_text()[:20])
    report = c.verify()
    assert report.removed == [(f"actions/lint/{e['lint'].hex}.json", "does not parse")] and not path.exists()


def test_a_record_naming_a_missing_object_is_removed(tmp_path):
    c = cache(tmp_path)
    e = populate(c)
    object_path(c, e["parameters"]).unlink()
    report = c.verify()
    (rel, why), = report.removed
    assert rel == f"actions/package/{e['package'].hex}.json"
    assert why == f"names missing object(s) {e['parameters'][:12]}"


def test_a_record_under_another_stage_or_key_is_removed(tmp_path):
    c = cache(tmp_path)
    e = populate(c)
    src = record_path(c, "package", e["package"])
    (c.root / "actions" / "deploy").mkdir()
    (c.root / "actions" / "deploy" / src.name).write_bytes(src.read_bytes())           # another stage
    (src.parent / ("0" * 32 + ".json")).write_bytes(src.read_bytes())                  # another key
    (src.parent / "README").write_text("not a record")
    report = c.verify()
    assert dict(report.removed) == {f"actions/deploy/{src.name}": "is corrupt",
                                    f"actions/package/{'0' * 32}.json": "is corrupt",
                                    "actions/package/README": "not a cache record"}
    assert src.exists()


def test_with_the_team_key_unsigned_and_forged_records_are_removed(tmp_path):
    c = cache(tmp_path, KEY)
    e = populate(c)
    path = record_path(c, "package", e["package"])
    rec = json.loads(path.read_text())
    rec.pop("mac")
    rec["result"]["size"] = 15
    rec.pop("check")
    rec["check"] = digest_value(rec)                      # a forgery: check recomputed, no key to sign
    path.write_text(canonical_json(rec))
    report = c.verify()
    assert report.removed == [(f"actions/package/{e['package'].hex}.json",
                               "is not signed with the team key (forged, or written before the key was set)")]
    assert "signatures not checked" not in report.summary()


def test_a_bad_last_key_file_is_removed(tmp_path):
    c = cache(tmp_path)
    populate(c)
    last = next((c.root / "last").rglob("*.json"))
    last.write_text("{")
    report = c.verify()
    assert report.removed == [(last.relative_to(c.root).as_posix(), "does not parse")]


def test_stray_temp_files_older_than_the_threshold_are_removed(tmp_path):
    c = cache(tmp_path)
    populate(c)
    old, young = [], []
    for folder in ("objects/ab", "actions/package", "last/package", ".", "local"):
        d = c.root / folder
        d.mkdir(parents=True, exist_ok=True)
        o = d / ".tmp-abc123.json"
        o.write_text("partial")
        os.utime(o, (time.time() - 7200, time.time() - 7200))
        old.append(o)
        y = d / ".tmp-def456"
        y.write_text("being written")
        young.append(y)
    report = c.verify(remove_temp_older_than=3600)
    assert report.temp_removed == 5 and report.temp_kept == 5 and report.ok
    assert not any(p.exists() for p in old) and all(p.exists() for p in young)
    assert (report.objects, report.records) == (4, 2)                 # temp files are not counted as entries
    assert "5 stray temp files (kept 5 recent, maybe in use); the cache is sound" in report.summary()


def test_the_temp_file_of_a_killed_write_is_swept(tmp_path):
    """A writer killed between writing its temp file and renaming it leaves `.tmp-*` behind."""
    c = cache(tmp_path)
    script = textwrap.dedent(f"""
        import os, sys, time
        from copilot_doit import cache as m
        def stuck(*a):
            print("written", flush=True)
            time.sleep(60)
        m.os.replace = stuck
        m.Cache({str(c.root)!r}).put_object(b"x" * 1000)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "written"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=20)
    leftovers = list(c.root.rglob(".tmp-*"))
    assert len(leftovers) == 1
    assert c.verify().temp_kept == 1 and leftovers[0].exists()         # young: maybe a live write
    report = c.verify(remove_temp_older_than=0)
    assert report.temp_removed == 1 and not leftovers[0].exists()
