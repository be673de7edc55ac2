"""The build checks of a run of several workloads find the app's built images in one listing of the engine
(`engine.image_ids`, the engine's `reference` filter) instead of one inspect per image. The listing is read
beside the contexts' hashing (stages.prefetch) and no check waits for it: one made before it is in inspects
its image, as does one whose image the listing lacks, so the answer is the one an inspect gives."""
from __future__ import annotations

import subprocess
import threading
import time
import uuid

from conftest import missing, scratch_session
from test_prefetch_order import FakeStage
from copilot_doit import engine, stages
from copilot_doit.stages import build


def test_once_listed_an_image_is_found_there_and_an_unlisted_one_is_inspected(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "listing", ["aa", "bb", "cc"])
    listings, inspects = [], []
    monkeypatch.setattr(engine, "image_ids", lambda ref: listings.append(ref) or {"sha256:aa", "sha256:bb"})
    monkeypatch.setattr(engine, "image_id", lambda ref: inspects.append(ref) or ("sha256:dd" if ref == "sha256:dd" else None))
    build.list_built_images(s)
    build.list_built_images(s)
    assert build.in_the_engine(s, "sha256:aa") and build.in_the_engine(s, "sha256:bb")
    assert build.in_the_engine(s, "sha256:dd")           # built after the listing, or its content tag removed
    assert not build.in_the_engine(s, "sha256:ee")
    assert listings == [f"copilot-doit/{s.ws.app}-*"]    # once per run
    assert inspects == ["sha256:dd", "sha256:ee"]        # only what the listing did not have


def test_a_check_made_while_the_listing_is_being_read_inspects_at_once(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "listing2", ["aa", "bb"])
    release, inspects = threading.Event(), []

    def slow_listing(ref):
        assert release.wait(10)
        return {"sha256:aa"}
    monkeypatch.setattr(engine, "image_ids", slow_listing)
    monkeypatch.setattr(engine, "image_id", lambda ref: inspects.append(ref) or ref)
    reading = threading.Thread(target=build.list_built_images, args=(s,))
    reading.start()
    started = time.monotonic()
    assert build.in_the_engine(s, "sha256:aa")
    assert time.monotonic() - started < 5 and inspects == ["sha256:aa"]   # did not wait for the listing
    release.set()
    reading.join(10)
    assert build.in_the_engine(s, "sha256:aa") and inspects == ["sha256:aa"]   # from the listing now


def test_a_failed_listing_leaves_the_checks_to_inspect(tmp_path, monkeypatch):
    from copilot_doit.errors import ServiceUnavailable
    _, s = scratch_session(tmp_path, monkeypatch, "listing3", ["aa", "bb"])

    def no_engine(ref):
        raise ServiceUnavailable("the Docker engine does not answer")
    monkeypatch.setattr(engine, "image_ids", no_engine)
    monkeypatch.setattr(engine, "image_id", lambda ref: ref)
    build.list_built_images(s)                          # no exception: the checks report the engine
    assert build.in_the_engine(s, "sha256:aa")


def test_prefetch_reads_the_listing_beside_the_hashing_for_several_workloads_only(tmp_path, monkeypatch):
    for names, expected in ((["aa", "bb"], 1), (["aa"], 0)):
        _, s = scratch_session(tmp_path / str(len(names)), monkeypatch, f"listing{len(names)}x", names)
        listings, threads = [], []
        monkeypatch.setattr(build, "list_built_images",
                            lambda session: listings.append(session) or threads.append(threading.current_thread()))
        monkeypatch.setattr(stages, "ENV", FakeStage(lambda session, name, env: None))
        workload = FakeStage(lambda session, name, env: None)
        jobs = [(stages.ENV, None, "test")] + [(workload, n, "test") for n in names]
        stages._check_all(s, jobs, jobs[1:], 8)
        assert listings == [s] * expected
        assert all(t is not threading.current_thread() for t in threads)   # in a thread beside the hashing


def test_the_engine_lists_the_images_of_a_name_pattern():
    """Against the real engine: an image tagged `copilot-doit/<app>-<workload>` is listed under the app's
    pattern, and not under another app's whose name it starts with."""
    from copilot_doit.errors import ServiceUnavailable
    try:
        engine.image_id("copilot-doit-probe:none")
    except ServiceUnavailable as exc:
        missing(f"Docker engine: {exc}")
    app = f"lst{uuid.uuid4().hex[:8]}"
    existing = subprocess.run(["docker", "images", "-q"], capture_output=True, text=True, timeout=60).stdout.split()
    source = existing[0] if existing else f"copilot-doit/{app}-seed:x"
    if not existing:   # an empty engine: an image with no layer, built from nothing
        subprocess.run(["docker", "build", "-q", "-t", source, "-"], input="FROM scratch\nLABEL a=b\n",
                       text=True, capture_output=True, timeout=120, check=True)
    tag = f"copilot-doit/{app}-web:ck-1"
    subprocess.run(["docker", "tag", source, tag], check=True, capture_output=True, timeout=60)
    try:
        image = engine.image_id(tag)
        assert image in engine.image_ids(f"copilot-doit/{app}-*")
        assert image not in engine.image_ids(f"copilot-doit/{app}x-*")
        assert engine.image_ids(f"copilot-doit/{app}-nothing-*") == set()
    finally:
        subprocess.run(["docker", "rmi", tag, f"copilot-doit/{app}-seed:x"], capture_output=True, timeout=60)
