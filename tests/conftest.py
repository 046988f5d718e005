"""Shared test set-up: snapshots live in the top-level `snapshots/` folder, one text file each."""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"


class TextSnapshot(SingleFileSnapshotExtension):
    """`snapshots/<tests subfolder>/<test module>/<test name>.txt`, read as plain text."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"

    @classmethod
    def dirname(cls, *, test_location) -> str:
        subfolder = Path(test_location.filepath).parent.relative_to(TESTS)
        return str(REPO / "snapshots" / subfolder / test_location.basename)


@pytest.fixture
def snapshot(snapshot):
    return snapshot.with_defaults(extension_class=TextSnapshot)
