"""Shared test set-up: snapshots live in the top-level `snapshots/` folder, one text file each."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from engine.graphs.files import write_atomic

REPO = Path(__file__).resolve().parent.parent

# Property tests: `ci` (the default) runs a fixed set of examples, the same each run, so that
# main stays green; `nightly` (scripts/nightly, or --hypothesis-profile=nightly) runs many more
# with fresh seeds, and keeps failures in .hypothesis/ to replay them first next time.
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=4000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
TESTS = REPO / "tests"


class TextSnapshot(SingleFileSnapshotExtension):
    """`snapshots/<tests subfolder>/<test module>/<test name>.txt`, read as plain text."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"

    @classmethod
    def dirname(cls, *, test_location) -> str:
        subfolder = Path(test_location.filepath).parent.relative_to(TESTS)
        return str(REPO / "snapshots" / subfolder / test_location.basename)

    @classmethod
    def write_snapshot_collection(cls, *, snapshot_collection, name_order=None) -> None:
        """syrupy's own writer truncates the snapshot and writes into it; an update stopped
        part way (a kill, a full disk) would leave a part. This one writes it whole or not at
        all (`engine.graphs.files`)."""
        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"a text snapshot must be a str, got {type(data).__name__}")
        write_atomic(snapshot_collection.location, data)


@pytest.fixture
def snapshot(snapshot):
    return snapshot.with_defaults(extension_class=TextSnapshot)


@pytest.fixture(autouse=True)
def _colour_from_the_terminal_only(monkeypatch):
    """The CLI colours where FORCE_COLOR asks (`engine.frontends.colour`); tests compare plain
    text, so a FORCE_COLOR or NO_COLOR in the developer's environment must not reach them.
    Tests of colour set what they need themselves."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
