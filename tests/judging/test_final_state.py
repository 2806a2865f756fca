"""A tau-bench-style benchmark in miniature: expected_state agrees with every label.

tests/judging/taubench/ holds an airline-like domain (users, reservations, flights; five
tools in taubench_tools.py), tasks whose expected_state is what their ground-truth actions
make, and mutations of those actions labelled with the policies they must violate: a
dropped write, a wrong argument, an extra write, two writes swapped where the order
matters and where it does not, a missing output, and harmless changes (an extra read, a
failed retry, an output in other case). A scripted agent replays each trajectory through
the plugin's own simulation and judging; every verdict must match its label.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from taubench_tools import DATA
from taubench_tools import TOOLS
from taubench_tools import ReplayAgent
from taubench_tools import trajectories
from taubench_tools import trajectory

from pytest_agentsim import EventResult
from pytest_agentsim import PolicyPack
from pytest_agentsim import PolicyViolation
from pytest_agentsim import RuleJudge
from pytest_agentsim import ToolSandbox
from pytest_agentsim import default_registry
from pytest_agentsim import load_events
from pytest_agentsim import load_pack
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.packs.events import starting_db
from pytest_agentsim.simulation.runner import SimulationRunner

#: (task, mutation or None for the ground truth, the policies it must violate)
CASES: list[tuple[str, str | None, list[str]]] = [
    case
    for task, truth in trajectories().items()
    for case in [
        (task, None, []),
        *((task, name, list(m["violates"])) for name, m in truth["mutations"].items()),
    ]
]


@pytest.fixture(scope="module")
def domain() -> tuple[PolicyPack, dict[str, Event]]:
    registry = default_registry()
    pack = load_pack(DATA / "flights.yaml", registry=registry)
    events = load_events(DATA / "events.yaml", packs={"flights": pack}, registry=registry)
    return pack, {event.id: event for event in events.events}


def replay(
    domain: tuple[PolicyPack, dict[str, Event]], task: str, mutation: str | None
) -> EventResult:
    pack, events = domain
    event = events[task]
    actions, say = trajectory(task, mutation)
    runner = SimulationRunner(judges=[RuleJudge(default_registry())])
    sandbox = ToolSandbox(TOOLS, starting_db(pack, event))
    return runner.result(event, pack, ReplayAgent(actions, say), sandbox)


def test_every_task_has_the_mutation_kinds_the_benchmark_labels() -> None:
    names = {name for _, name, _ in CASES if name}
    for kind in (
        "dropped-write",
        "wrong-argument",
        "extra-write",
        "swapped-independent-writes",
        "swapped-dependent-writes",
        "missing-output",
    ):
        assert kind in names
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("task", "mutation", "violates"),
    CASES,
    ids=[f"{task}-{mutation or 'ground-truth'}" for task, mutation, _ in CASES],
)
def test_the_verdict_agrees_with_the_label(
    domain: tuple[PolicyPack, dict[str, Event]],
    task: str,
    mutation: str | None,
    violates: list[str],
) -> None:
    result = replay(domain, task, mutation)
    assert result.conversation.error is None
    assert not result.errors and not result.with_outcome(Outcome.inconclusive)
    assert sorted(r.policy_id for r in result.violated) == sorted(violates)
    if violates:
        with pytest.raises(PolicyViolation):
            result.assert_compliant()
    else:
        result.assert_compliant()


def test_agreement_over_all_labelled_trajectories_is_total(
    domain: tuple[PolicyPack, dict[str, Event]],
) -> None:
    agree = sum(
        bool(replay(domain, task, mutation).violated) == bool(violates)
        for task, mutation, violates in CASES
    )
    assert agree == len(CASES)


def reason(result: EventResult, policy: str) -> str:
    (found,) = [r for r in result.policies if r.policy_id == policy]
    return next(v.reason for v in found.verdicts if v.outcome is Outcome.violated)


def test_an_extra_write_is_named_apart_from_the_expected_changes(
    domain: tuple[PolicyPack, dict[str, Event]],
) -> None:
    text = reason(replay(domain, "t1-cancel-and-compensate", "extra-write"), "task-outcome")
    assert text == (
        "final database is not the expected state: other changes (3): "
        "users.mia_li_3668.payment_methods.gift_card_2.amount: changed from 200 to 320; "
        "reservations.R2.status: changed from 'active' to 'cancelled'; "
        "reservations.R2.payment_history.1: changed from nothing to "
        "{'payment_id': 'gift_card_2', 'amount': -120}"
    )


def test_writes_swapped_where_order_matters_show_the_values_that_moved(
    domain: tuple[PolicyPack, dict[str, Event]],
) -> None:
    text = reason(replay(domain, "t3-two-certificates", "swapped-dependent-writes"), "task-outcome")
    assert text == (
        "final database is not the expected state: expected changes wrong or missing (2): "
        "users.mia_li_3668.payment_methods.certificate_1.amount: expected 50, found 100; "
        "users.mia_li_3668.payment_methods.certificate_2.amount: expected 100, found 50"
    )


def test_a_dropped_or_wrong_write_and_a_missing_output_say_what_is_wrong(
    domain: tuple[PolicyPack, dict[str, Event]],
) -> None:
    dropped = reason(replay(domain, "t1-cancel-and-compensate", "dropped-write"), "task-outcome")
    assert dropped == (
        "final database is not the expected state: expected changes wrong or missing (2): "
        "reservations.R1.status: expected 'cancelled', found it unchanged; "
        "reservations.R1.payment_history.1: expected "
        "{'payment_id': 'credit_card_1', 'amount': -300}, found nothing"
    )
    wrong = reason(replay(domain, "t2-change-flight", "wrong-date"), "task-outcome")
    assert wrong == (
        "final database is not the expected state: expected changes wrong or missing (3): "
        "reservations.R3.flights.0.date: expected '2026-05-02', found '2026-05-03'; "
        "reservations.R3.flights.0.price: expected 410, found 450; "
        "reservations.R3.payment_history.1.amount: expected 110, found 150"
    )
    unsaid = reason(replay(domain, "t2-change-flight", "missing-output"), "task-outcome")
    assert unsaid == "the agent never said '110'"


def test_an_unexpected_write_to_a_held_path_fails_its_own_policy_too(
    domain: tuple[PolicyPack, dict[str, Event]],
) -> None:
    result = replay(domain, "t4-change-date-leave-the-rest", "extra-write-cancels-the-other-trip")
    assert reason(result, "no-unasked-cancel").startswith(
        "reservations.R2 must not change; 2 changed: "
        "reservations.R2.status: changed from 'active' to 'cancelled'; "
        "reservations.R2.payment_history.1: changed from nothing to "
    )


CONFTEST = """\
import pytest
from taubench_tools import TOOLS, ReplayAgent, trajectory

# The agent under test replays each task's ground truth, except for two mutations.
MUTATED = {
    "t1-cancel-and-compensate": "extra-write",
    "t3-two-certificates": "swapped-dependent-writes",
}

@pytest.fixture
def agentsim_agent(agentsim_event):
    return ReplayAgent(*trajectory(agentsim_event.id, MUTATED.get(agentsim_event.id)))

@pytest.fixture(scope="session")
def agentsim_tools():
    return TOOLS
"""


def test_the_plugin_fails_the_mutated_tasks_with_the_state_diff(
    pytester: pytest.Pytester,
) -> None:
    data = pytester.path / "taubench"
    shutil.copytree(DATA, data)
    shutil.copy(Path(__file__).parent / "taubench_tools.py", pytester.path)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_tasks="def test_task(agentsim_conversation):\n"
        "    agentsim_conversation.assert_compliant()\n"
    )
    pytester.makeini(
        "[pytest]\nagentsim_packs = taubench/flights.yaml\nagentsim_events = taubench/events.yaml\n"
    )
    result = pytester.runpytest("--agentsim", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, passed=3)
    result.stdout.fnmatch_lines(
        [
            "*VIOLATED task-outcome *",
            "*conversation: final database is not the expected state: other changes (3):*",
            "*(rules: expected_state(3 changes))",
            "*VIOLATED task-outcome *",
            "*certificate_1.amount: expected 50, found 100; *certificate_2.amount: expected 100,"
            " found 50",
            "*(rules: expected_state(2 changes))",
        ]
    )
    result.stdout.fnmatch_lines(["*task-outcome *Operational Misuses *5 *3 *2 *0 *0 *0 *40%"])
