"""Where --agentsim-generate writes: the configured file, under the name it was given."""

from __future__ import annotations

import pytest


def test_a_new_events_file_keeps_its_configured_name(desk: pytest.Pytester) -> None:
    desk.makeini(
        "[pytest]\nagentsim_packs = policies/desk.yaml\n"
        "agentsim_events = fixtures/events/desk1000.generated.yaml\n"
    )
    written = desk.runpytest("--agentsim", "--agentsim-generate", "--collect-only", "-q")
    assert written.ret == pytest.ExitCode.OK, written.stderr.str()
    written.stdout.fnmatch_lines(["wrote fixtures/events/desk1000.generated.yaml: 4 desk events*"])
    events = desk.path / "fixtures" / "events"
    assert sorted(path.name for path in events.iterdir()) == ["desk1000.generated.yaml"]
    # The next run reads it as configured, without regenerating.
    again = desk.runpytest("--agentsim", "--collect-only", "-q")
    again.stdout.fnmatch_lines(["4 tests collected*"])


def test_with_several_packs_a_new_file_names_its_pack(desk: pytest.Pytester) -> None:
    pack = desk.path / "policies" / "desk.yaml"
    (desk.path / "policies" / "help.yaml").write_text(
        pack.read_text().replace("domain: desk", "domain: help")
    )
    desk.makeini(
        "[pytest]\nagentsim_packs =\n    policies/desk.yaml\n    policies/help.yaml\n"
        "agentsim_events = fixtures/events/help-big.yaml\n"
    )
    written = desk.runpytest("--agentsim", "--agentsim-generate", "--collect-only", "-q")
    written.stdout.fnmatch_lines(["wrote fixtures/events/help-big.yaml: 4 help events*"])
    # desk, which no configured file names, gets its default snapshot.
    assert (desk.path / "fixtures" / "events" / "desk.generated.yaml").exists()

    unnamed = desk.runpytest(
        "--agentsim", "--agentsim-generate", "--agentsim-events=fixtures/events/big.yaml"
    )
    assert unnamed.ret == pytest.ExitCode.USAGE_ERROR
    unnamed.stderr.fnmatch_lines(
        [
            "ERROR: fixtures/events/big.yaml: events file not found, and its name names no "
            "pack to generate it from (packs: desk, help); start its name with the domain, "
            "like <domain>.generated.yaml"
        ]
    )


def test_two_configured_snapshots_of_one_pack_are_an_error(desk: pytest.Pytester) -> None:
    desk.makeini(
        "[pytest]\nagentsim_packs = policies/desk.yaml\nagentsim_events =\n"
        "    fixtures/events/desk.generated.yaml\n    fixtures/events/desk-more.yaml\n"
    )
    result = desk.runpytest("--agentsim", "--agentsim-generate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: fixtures/events/desk-more.yaml: --agentsim-generate writes one snapshot "
            "per pack, and fixtures/events/desk.generated.yaml is already the one of domain "
            "'desk'; configure one of them"
        ]
    )
