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
        # a list in one item, aliased by two later ones: each finds it whole
        (
            "events:\n  - {id: a, n: &n [1, [2]]}\n  - {id: b, n: *n}\n  - {id: c, n: *n}\n",
            [2, 3, 4],
        ),
        ("base: &b {x: 1}\nevents:\n  - {id: a, <<: *b}\n  - {id: b}\n", [3, 4]),
        ("events: !!seq\n  - {id: a}\n  - {id: b, more: [[1], [2]]}\n", [2, 3]),
        ("events: &e\n  - {id: a}\nmore:\n  <<: *e\n", [2]),  # a merge of the list
    ],
    ids=[
        "tree",
        "alias-elsewhere",
        "alias-in-the-list",
        "alias-across-items",
        "merge-in-an-item",
        "tagged-list",
        "merge-of-the-list",
    ],
)
def test_a_document_reads_the_same_with_its_lines(
    tmp_path: Path, text: str, lines: list[int]
) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    data = load_document(path, what="test file")
    assert to_plain(data) == yaml.safe_load(text)
    assert data["events"].item_lines == lines
    assert data["events"][0].key_lines["id"] == lines[0]


def test_a_top_level_list_that_contains_itself_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("events: &e\n  - *e\n")
    with pytest.raises(
        pytest.UsageError, match=r"doc\.yaml:1: invalid YAML in test file: an alias"
    ):
        load_document(path, what="test file")
