"""The build checks of a run of several workloads ask the engine for the app's built images in one listing
(`engine.image_ids`, the engine's `reference` filter) instead of one inspect per image; an image not in the
listing is still asked for by itself, so the answer is the one an inspect gives."""
from __future__ import annotations

import subprocess
import uuid

from conftest import missing, scratch_session
from copilot_doit import engine
from copilot_doit.stages import build


def test_several_workloads_make_one_listing_and_an_unlisted_image_is_inspected(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "listing", ["aa", "bb", "cc"])
    listings, inspects = [], []
    monkeypatch.setattr(engine, "image_ids", lambda ref: listings.append(ref) or {"sha256:aa", "sha256:bb"})
    monkeypatch.setattr(engine, "image_id", lambda ref: inspects.append(ref) or ("sha256:dd" if ref == "sha256:dd" else None))
    assert build.in_the_engine(s, "sha256:aa") and build.in_the_engine(s, "sha256:bb")
    assert build.in_the_engine(s, "sha256:dd")           # built after the listing, or its content tag removed
    assert not build.in_the_engine(s, "sha256:ee")
    assert listings == [f"copilot-doit/{s.ws.app}-*"]    # once per run
    assert inspects == ["sha256:dd", "sha256:ee"]        # only what the listing did not have


def test_one_workload_inspects_its_image(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "listing1", ["aa"])
    listings, inspects = [], []
    monkeypatch.setattr(engine, "image_ids", lambda ref: listings.append(ref) or set())
    monkeypatch.setattr(engine, "image_id", lambda ref: inspects.append(ref) or ref)
    assert build.in_the_engine(s, "sha256:aa")
    assert listings == [] and inspects == ["sha256:aa"]  # one request either way: the plain inspect


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
