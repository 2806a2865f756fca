"""Reading YAML with lines: a document reads the same whether its nodes are released as
they are built (a tree) or kept (aliases share them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_agentsim.core.sources import load_document
from pytest_agentsim.core.sources import to_plain

TREE = "events:\n  - id: a\n    n: [1, 2]\n  - id: b\n    n: [3]\n"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (TREE, [2, 4]),
        (TREE + "shared: &x {k: [1]}\nagain: *x\n", [2, 4]),
        ("events:\n  - &e {id: a}\n  - *e\n", [2, 2]),  # an alias is its anchor's node
    ],
    ids=["tree", "alias-elsewhere", "alias-in-the-list"],
)
def test_a_document_reads_the_same_with_its_lines(
    tmp_path: Path, text: str, lines: list[int]
) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    data = load_document(path, what="test file")
    assert to_plain(data) == yaml.safe_load(text)
    assert data["events"].item_lines == lines
    assert data["events"][0].key_lines["id"] == 2
