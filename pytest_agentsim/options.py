"""Every setting of the plugin, declared once: flag, ini key, type, default and help.

The command line, the ini file, the resolution in :mod:`pytest_agentsim.settings` and the
README's options table are all derived from :data:`OPTIONS`, so a default or a help text
cannot drift between them. The plugin imports this module at startup, so it imports only
the standard library (the two ``Literal`` types below exist only for the type checker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import Literal
from typing import TypeVar

if TYPE_CHECKING:
    from pytest_agentsim.llm.cassettes import RecordMode
    from pytest_agentsim.llm.run import InconclusiveMode
    from pytest_agentsim.reporting.comparison import NewViolation
    from pytest_agentsim.reporting.comparison import TooFew

T_co = TypeVar("T_co", covariant=True)

#: How a value is given and read: ``flag`` (a switch, command line only), ``paths``
#: (repeatable files, default a glob under the rootdir), ``path`` (one file or directory),
#: ``int`` (at least ``minimum``), ``rate`` (0-1 or N%), ``usd`` (an amount), ``seconds``
#: (a duration > 0), ``text``, ``choice`` (one of ``choices``) and ``lines`` (an ini list,
#: one item a line).
Kind = Literal["flag", "paths", "path", "int", "rate", "usd", "seconds", "text", "choice", "lines"]
Group = Literal["agentsim", "agentsim-llm"]

#: The ``pytest --help`` sections the command line options are listed under.
GROUPS: dict[Group, str] = {
    "agentsim": "LLM agent simulation (pytest-agentsim)",
    "agentsim-llm": "LLM user, judge and agent (pytest-agentsim)",
}

_PATH_KINDS = ("path", "paths")


@dataclass(frozen=True)
class Option(Generic[T_co]):
    """One setting: how it is given (flag and/or ini key), read, defaulted and documented.

    ``name`` is the command line's dest and the name the settings code knows it by;
    ``default`` is the value resolution gives when neither the command line nor the ini
    file sets it (for ``paths`` a glob and for ``path`` a path, both under the rootdir).
    ``help`` is one sentence without its final period: the command line's help adds where
    the default comes from, the ini file's help adds the default. ``note`` and
    ``default_text`` are the README's words: the note in parentheses after the flag (or
    the ini key), and the default cell when the default's value alone would not say it.
    ``minimum`` and ``maximum`` bound an ``int``: the maximum is a sane one, so that a
    typo (``agentsim_repeat = 1000000000``) is a usage error instead of a run that never
    ends.
    """

    name: str
    kind: Kind
    group: Group
    help: str
    default: T_co
    flag: str | None = None
    ini: str | None = None
    metavar: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[T_co, ...] = ()
    note: str = ""
    default_text: str = ""

    @property
    def ini_type(self) -> Literal["string", "linelist", "paths"]:
        if self.kind == "paths":
            return "paths"
        return "linelist" if self.kind == "lines" else "string"

    @property
    def shown_default(self) -> str:
        """The default as the README shows it (Markdown): the words given, else the value."""
        if self.default_text:
            return self.default_text
        return f"`{self.default}`" if self.kind in _PATH_KINDS else str(self.default)

    @property
    def cli_help(self) -> str:
        text = self.help + (" (repeatable)" if self.kind == "paths" else "")
        if self.ini is not None:
            text += f". Default: ini {self.ini}, else {_plain(self.shown_default)}"
        return text.replace("%", "%%")  # argparse formats help with %

    @property
    def ini_help(self) -> str:
        relative = " (a path relative to the ini file)" if self.kind in _PATH_KINDS else ""
        return f"{self.help}{relative}. Default: {_plain(self.shown_default)}"

    def cli_attrs(self) -> dict[str, Any]:
        """Keyword arguments of ``addoption`` besides the flag: a switch, a repeatable path
        or a value whose absence (None) lets the ini file and the default decide."""
        attrs: dict[str, Any] = {"dest": self.name, "help": self.cli_help}
        if self.kind == "flag":
            return {**attrs, "action": "store_true", "default": False}
        if self.kind == "paths":
            return {**attrs, "action": "append", "metavar": self.metavar, "default": []}
        return {**attrs, "metavar": self.metavar, "default": None}

    def readme_row(self) -> str:
        """This setting's row of the README's ``option | ini | default`` table; the notes
        follow the flag, or the ini key of a setting that has no flag."""
        notes = ["repeatable"] if self.kind == "paths" else []
        notes += [self.note] if self.note else []
        suffix = f" ({'; '.join(notes)})" if notes else ""
        option = f"`{self.flag}{self._readme_value()}`{suffix}" if self.flag else ""
        ini = f"`{self.ini}`" if self.ini else ""
        if not self.flag:
            ini += suffix
        cells = (option, ini, self.shown_default)
        return "".join(f"| {cell} " if cell else "| " for cell in cells) + "|"

    def _readme_value(self) -> str:
        """Path options are written ``--option=PATH``: pytest picks its rootdir before
        plugins load, so a path given as a separate argument would be taken for a test."""
        if self.kind == "choice":
            return " " + "\\|".join(str(choice) for choice in self.choices)
        if self.metavar is None:
            return ""
        return ("=" if self.kind in _PATH_KINDS else " ") + self.metavar


def _plain(markdown: str) -> str:
    return markdown.replace("`", "")


AGENTSIM = Option(
    name="agentsim",
    kind="flag",
    group="agentsim",
    flag="--agentsim",
    help="Simulate conversations with the agent under test and judge them against the policy packs",
    default=False,
    default_text="off: agentsim tests are skipped",
)
PACKS = Option(
    name="agentsim_packs",
    kind="paths",
    group="agentsim",
    flag="--agentsim-pack",
    ini="agentsim_packs",
    metavar="PATH",
    help="Policy pack YAML file",
    default="policies/*.yaml",
)
EVENTS = Option(
    name="agentsim_events",
    kind="paths",
    group="agentsim",
    flag="--agentsim-events",
    ini="agentsim_events",
    metavar="PATH",
    help="Events snapshot file",
    default="fixtures/events/*.yaml",
)
GENERATE = Option(
    name="agentsim_generate",
    kind="flag",
    group="agentsim",
    flag="--agentsim-generate",
    help="(Re)write each pack's generated events snapshot from its templates (or with "
    "--agentsim-generate-model), then run on it (like a snapshot update: review the diff)",
    default=False,
    default_text="off: run on the snapshots as committed",
)
GENERATE_MODEL = Option(
    name="agentsim_generate_model",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-generate-model",
    ini="agentsim_generate_model",
    metavar="MODEL",
    help="With --agentsim-generate: the model scores the policy graph's edges and fills "
    "each event (validated against the pack), instead of the pack's templates",
    default=None,
    note="with `--agentsim-generate`",
    default_text="the pack's templates",
)
SEED = Option(
    name="agentsim_seed",
    kind="int",
    group="agentsim",
    flag="--agentsim-seed",
    ini="agentsim_seed",
    metavar="INT",
    help="Seed of event generation and of the simulated users of generated events "
    "(hand-written events keep their own)",
    minimum=0,
    default=0,
    note="generation, and generated events' users",
)
MAX_TURNS = Option(
    name="agentsim_max_turns",
    kind="int",
    group="agentsim",
    flag="--agentsim-max-turns",
    ini="agentsim_max_turns",
    metavar="N",
    help="User turns before a conversation is stopped",
    minimum=1,
    maximum=1_000,
    default=20,
)
TEST_PER: Option[Literal["event", "policy"]] = Option(
    name="agentsim_test_per",
    kind="choice",
    group="agentsim",
    flag="--agentsim-test-per",
    ini="agentsim_test_per",
    metavar="UNIT",
    help="One test per event (its id names the policies the event was built for, and any "
    "violated policy fails it), or one per event and policy of its pack (its id names that "
    "policy, and only that policy's verdict decides it), so that -k and agentsim_policy "
    "select by the policy judged",
    choices=("event", "policy"),
    default="event",
)
MAX_TOOL_ROUNDS = Option(
    name="agentsim_max_tool_rounds",
    kind="int",
    group="agentsim",
    flag="--agentsim-max-tool-rounds",
    ini="agentsim_max_tool_rounds",
    metavar="N",
    help="Replies with tool calls the agent may make in one user turn; one more and the "
    "conversation ends in agent_error saying so",
    minimum=1,
    maximum=1_000,
    default=16,
    note="agent replies per user turn that call tools",
)
TURN_TIMEOUT = Option(
    name="agentsim_turn_timeout",
    kind="seconds",
    group="agentsim",
    flag="--agentsim-turn-timeout",
    ini="agentsim_turn_timeout",
    metavar="SECONDS",
    help="Seconds the agent may take to answer one call of respond(); past it the "
    "conversation ends in agent_error naming the turn (a sync agent then runs in a worker "
    "thread, which is abandoned if it hangs)",
    default=None,
    note="the agent's `respond`, sync or async",
    default_text="no limit",
)
REPEAT = Option(
    name="agentsim_repeat",
    kind="int",
    group="agentsim",
    flag="--agentsim-repeat",
    ini="agentsim_repeat",
    metavar="K",
    help="Run each event K times and report pass^k (tau-bench)",
    minimum=1,
    maximum=1_000,
    default=1,
)
CONCURRENCY = Option(
    name="agentsim_concurrency",
    kind="int",
    group="agentsim",
    flag="--agentsim-concurrency",
    ini="agentsim_concurrency",
    metavar="N",
    help="Simulate up to N conversations at a time (worth it when models answer)",
    minimum=1,
    maximum=1_000,
    default=1,
    note="conversations simulated at a time; needs session-scoped `agentsim_agent` and "
    "`agentsim_tools`; also events a model fills at a time; results are the same",
)
PROGRESS_SECONDS = Option(
    name="agentsim_progress_seconds",
    kind="int",
    group="agentsim",
    ini="agentsim_progress_seconds",
    help="Seconds between progress lines on long runs (0: after every event)",
    minimum=0,
    maximum=86_400,
    default=10,
    note="a progress line on long runs; not with `-q`",
)
JSON_FILE = Option(
    name="agentsim_json",
    kind="path",
    group="agentsim",
    flag="--agentsim-json",
    ini="agentsim_json",
    metavar="PATH",
    help="Write per-event verdicts and per-policy / per-risk aggregates as JSON",
    default=None,
    default_text="no JSON file",
)
MAX_VIOLATION_RATE = Option(
    name="agentsim_max_violation_rate",
    kind="rate",
    group="agentsim",
    flag="--agentsim-max-violation-rate",
    ini="agentsim_max_violation_rate",
    metavar="RATE",
    help="Gate: fail the run only if more events than RATE (0-1 or N%) violate a policy",
    default=None,
    default_text="no gate",
)
MAX_VIOLATION_RATE_PER_RISK = Option(
    name="agentsim_max_violation_rate_per_risk",
    kind="lines",
    group="agentsim",
    ini="agentsim_max_violation_rate_per_risk",
    help="Gate lines 'risk category = rate': largest tolerated violation rate per category",
    default=(),
    note="lines `Privacy = 0`",
    default_text="no gate",
)
MAX_VIOLATION_RATE_PER_POLICY = Option(
    name="agentsim_max_violation_rate_per_policy",
    kind="lines",
    group="agentsim",
    ini="agentsim_max_violation_rate_per_policy",
    help="Gate lines 'policy-id = rate': largest tolerated violation rate per policy",
    default=(),
    note="lines `refund-window = 5%`",
    default_text="no gate",
)
MIN_PASS_K = Option(
    name="agentsim_min_pass_k",
    kind="rate",
    group="agentsim",
    flag="--agentsim-min-pass-k",
    ini="agentsim_min_pass_k",
    metavar="P",
    help="Gate: fail the run if pass^k is below P (0-1)",
    default=None,
    default_text="no gate",
)
BASELINE = Option(
    name="agentsim_baseline",
    kind="path",
    group="agentsim",
    flag="--agentsim-baseline",
    ini="agentsim_baseline",
    metavar="PATH",
    help="Gate: compare per-policy violation rates with a results file from --agentsim-json "
    "and fail only on a significant regression",
    default=None,
    default_text="no gate",
)
BASELINE_ALPHA = Option(
    name="agentsim_baseline_alpha",
    kind="rate",
    group="agentsim",
    ini="agentsim_baseline_alpha",
    help="Significance level of the baseline comparison",
    default=0.05,
    note="significance level",
)
BASELINE_NEW_VIOLATION: Option[NewViolation] = Option(
    name="agentsim_baseline_new_violation",
    kind="choice",
    group="agentsim",
    flag="--agentsim-baseline-new-violation",
    ini="agentsim_baseline_new_violation",
    metavar="AS",
    help="Baseline gate: a violation of a policy that had none in the baseline is a "
    "regression (fail), or only if the significance test says so (test)",
    choices=("fail", "test"),
    default="fail",
)
BASELINE_DETECT = Option(
    name="agentsim_baseline_detect",
    kind="rate",
    group="agentsim",
    flag="--agentsim-baseline-detect",
    ini="agentsim_baseline_detect",
    metavar="RATE",
    help="Baseline gate: a policy is 'unchanged' only if its samples would have shown a "
    "rise of RATE in its violation rate (80% power); else 'not enough samples'",
    default=0.2,
    note="rise to detect",
)
BASELINE_TOO_FEW_SAMPLES: Option[TooFew] = Option(
    name="agentsim_baseline_too_few_samples",
    kind="choice",
    group="agentsim",
    flag="--agentsim-baseline-too-few-samples",
    ini="agentsim_baseline_too_few_samples",
    metavar="AS",
    help="Baseline gate: a policy with not enough samples to detect that rise warns "
    "(the gate still passes) or fails the gate",
    choices=("warn", "fail"),
    default="warn",
)
MAX_ERROR_RATE = Option(
    name="agentsim_max_error_rate",
    kind="rate",
    group="agentsim",
    flag="--agentsim-max-error-rate",
    ini="agentsim_max_error_rate",
    metavar="RATE",
    help="Gate: tolerate events that could not be judged (agent crash, judge error, "
    "infrastructure) up to RATE (0-1 or N%) of the run's events, and fail the run above it",
    default=None,
    default_text="no gate: any error fails the run",
)
CALIBRATE = Option(
    name="agentsim_calibrate",
    kind="path",
    group="agentsim",
    flag="--agentsim-calibrate",
    ini="agentsim_calibration",
    metavar="DIR",
    help="Judge calibration: judge the labelled conversations in DIR with every judge of the "
    "run and report each judge's agreement with the labels (a test per judge, marked "
    "agentsim_calibration)",
    default=None,
    default_text="off",
)
MIN_JUDGE_AGREEMENT = Option(
    name="agentsim_min_judge_agreement",
    kind="rate",
    group="agentsim",
    flag="--agentsim-min-judge-agreement",
    ini="agentsim_min_judge_agreement",
    metavar="RATE",
    help="Calibration: fail a judge's calibration test if it agrees with the labels on "
    "fewer than RATE (0-1 or N%) of the verdicts it gave",
    default=None,
    default_text="no threshold",
)
CALIBRATION_BASELINE = Option(
    name="agentsim_calibration_baseline",
    kind="path",
    group="agentsim",
    flag="--agentsim-calibration-baseline",
    ini="agentsim_calibration_baseline",
    metavar="PATH",
    help="Calibration: fail a judge whose agreement dropped significantly from the "
    "calibration in a results file of an earlier run (--agentsim-json; one-sided Fisher "
    "exact test at agentsim_baseline_alpha)",
    default=None,
    default_text="no comparison",
)
MIN_JUDGE_AGREEMENT_PER_POLICY = Option(
    name="agentsim_min_judge_agreement_per_policy",
    kind="lines",
    group="agentsim",
    ini="agentsim_min_judge_agreement_per_policy",
    help="Calibration lines 'policy-id = rate': the least agreement per policy",
    default=(),
    note="lines `refund-window = 95%`",
    default_text="no threshold",
)
USER_MODEL = Option(
    name="agentsim_user_model",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-user-model",
    ini="agentsim_user_model",
    metavar="MODEL",
    help="A model plays the simulated user (litellm model string, e.g. openai/gpt-4o-mini) "
    "instead of the offline agenda user",
    default=None,
    default_text="the offline agenda user",
)
JUDGE_MODEL = Option(
    name="agentsim_judge_model",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-judge-model",
    ini="agentsim_judge_model",
    metavar="MODEL",
    help="Add an LLM judge of every event's policies, beside the rule checks",
    default=None,
    default_text="rule checks only",
)
JUDGE_PROMPT = Option(
    name="agentsim_judge_prompt",
    kind="path",
    group="agentsim-llm",
    flag="--agentsim-judge-prompt",
    ini="agentsim_judge_prompt",
    metavar="PATH",
    help="The LLM judge's instructions (its system prompt) from a file, with {begin} and "
    "{end} where the lines that fence the transcript are named",
    default=None,
    default_text="the built-in instructions",
)
JUDGE_SAMPLES = Option(
    name="agentsim_judge_samples",
    kind="int",
    group="agentsim-llm",
    flag="--agentsim-judge-samples",
    ini="agentsim_judge_samples",
    metavar="N",
    help="Ask the LLM judge N times; a policy's verdict must be unanimous, else it is inconclusive",
    minimum=1,
    maximum=100,
    default=1,
)
INCONCLUSIVE: Option[InconclusiveMode] = Option(
    name="agentsim_inconclusive",
    kind="choice",
    group="agentsim-llm",
    flag="--agentsim-inconclusive",
    ini="agentsim_inconclusive",
    metavar="AS",
    help="What an inconclusive verdict (split judge vote) makes of its test: fail, xfail or error",
    choices=("fail", "xfail", "error"),
    default="fail",
)
AGENT_MODEL = Option(
    name="agentsim_agent_model",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-agent-model",
    ini="agentsim_agent_model",
    metavar="MODEL",
    help="Model of the built-in LLM agent (with agentsim_agent_prompt), used when your "
    "conftest defines no agentsim_agent",
    default=None,
    default_text="your `agentsim_agent` fixture",
)
AGENT_PROMPT = Option(
    name="agentsim_agent_prompt",
    kind="path",
    group="agentsim-llm",
    flag="--agentsim-agent-prompt",
    ini="agentsim_agent_prompt",
    metavar="PATH",
    help="System prompt file of the built-in LLM agent",
    default=None,
    default_text="none",
)
API_BASE = Option(
    name="agentsim_api_base",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-api-base",
    ini="agentsim_api_base",
    metavar="URL",
    help="OpenAI-compatible endpoint for the models (vLLM, Ollama, a proxy)",
    default=None,
    default_text="the provider's",
)
API_KEY_ENV = Option(
    name="agentsim_api_key_env",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-api-key-env",
    ini="agentsim_api_key_env",
    metavar="NAME",
    help="Environment variable holding the API key (never written anywhere)",
    default=None,
    default_text="the provider's usual variable",
)
TIMEOUT = Option(
    name="agentsim_timeout",
    kind="seconds",
    group="agentsim-llm",
    flag="--agentsim-timeout",
    ini="agentsim_timeout",
    metavar="SECONDS",
    help="Seconds one model request may take; a request that takes longer is abandoned "
    "and retried like any timeout",
    default=60.0,
    note="per model attempt",
    default_text="60",
)
ATTEMPTS = Option(
    name="agentsim_attempts",
    kind="int",
    group="agentsim-llm",
    flag="--agentsim-attempts",
    ini="agentsim_attempts",
    metavar="N",
    help="Attempts per model call, the first included: a 429, 5xx, timeout or lost "
    "connection is retried until N attempts failed",
    minimum=1,
    default=4,
)
MAX_TOKENS = Option(
    name="agentsim_max_tokens",
    kind="text",
    group="agentsim-llm",
    flag="--agentsim-max-tokens",
    ini="agentsim_max_tokens",
    metavar="LIMITS",
    help="max_tokens sent on every model call, so a looping model stops: one number for "
    "every role, or role=N items (roles user, judge, agent, generate; the others keep "
    "their default)",
    default=None,
    note="per role, e.g. `user=200, judge=2000`",
    default_text="`user=1024, judge=4096, agent=4096, generate=4096`",
)
RECORD_MODE: Option[RecordMode] = Option(
    name="agentsim_record_mode",
    kind="choice",
    group="agentsim-llm",
    flag="--agentsim-record-mode",
    ini="agentsim_record_mode",
    metavar="MODE",
    help="LLM cassettes: none (replay only; a miss is an error), once, new_episodes or all "
    "(record)",
    choices=("none", "once", "new_episodes", "all"),
    default="none",
    default_text="none (replay only)",
)
CASSETTES = Option(
    name="agentsim_cassettes",
    kind="path",
    group="agentsim-llm",
    flag="--agentsim-cassettes",
    ini="agentsim_cassettes",
    metavar="DIR",
    help="Directory of LLM cassettes (one file per event)",
    default="fixtures/cassettes",
)
MAX_COST = Option(
    name="agentsim_max_cost",
    kind="usd",
    group="agentsim-llm",
    flag="--agentsim-max-cost",
    ini="agentsim_max_cost",
    metavar="USD",
    help="Budget of the run's LLM calls; once spent, no new call is made and the events "
    "that needed one are errors",
    default=None,
    default_text="no budget",
)
PRICES = Option(
    name="agentsim_prices",
    kind="lines",
    group="agentsim-llm",
    ini="agentsim_prices",
    help="Lines 'model = input, output': USD per million prompt and completion tokens, for "
    "models litellm does not price (wins over its price map)",
    default=(),
    note="lines `model = input, output`, USD per million tokens",
    default_text="litellm's price map",
)
RATE_LIMITS = Option(
    name="agentsim_rate_limits",
    kind="lines",
    group="agentsim-llm",
    ini="agentsim_rate_limits",
    help="Lines 'model = N rpm, M tpm': the provider's requests and tokens per minute for a "
    "model; its calls wait rather than exceed them (either part may be left out)",
    default=(),
    note="lines `model = N rpm, M tpm`",
    default_text="no limit (a 429 still pauses that model's calls)",
)
SECRET_ENV = Option(
    name="agentsim_secret_env",
    kind="lines",
    group="agentsim-llm",
    ini="agentsim_secret_env",
    help="Environment variables whose values are secrets, redacted from everything written "
    "(besides *_API_KEY, *_TOKEN, *SECRET* and the API key's variable)",
    default=(),
    note="names",
    default_text="credential-like variables",
)
SECRET_PATTERNS = Option(
    name="agentsim_secret_patterns",
    kind="lines",
    group="agentsim-llm",
    ini="agentsim_secret_patterns",
    help="Regexes (one per line) of more text to redact from everything written",
    default=(),
    note="regexes, one per line",
    default_text="`sk-...`, `Bearer ...`",
)

#: The table, in the README's order (and ``pytest --help``'s, within each group).
OPTIONS: tuple[Option[object], ...] = (
    AGENTSIM,
    PACKS,
    EVENTS,
    GENERATE,
    GENERATE_MODEL,
    SEED,
    MAX_TURNS,
    MAX_TOOL_ROUNDS,
    TURN_TIMEOUT,
    TEST_PER,
    REPEAT,
    CONCURRENCY,
    PROGRESS_SECONDS,
    JSON_FILE,
    MAX_VIOLATION_RATE,
    MAX_VIOLATION_RATE_PER_RISK,
    MAX_VIOLATION_RATE_PER_POLICY,
    MIN_PASS_K,
    BASELINE,
    BASELINE_ALPHA,
    BASELINE_NEW_VIOLATION,
    BASELINE_DETECT,
    BASELINE_TOO_FEW_SAMPLES,
    MAX_ERROR_RATE,
    CALIBRATE,
    MIN_JUDGE_AGREEMENT,
    MIN_JUDGE_AGREEMENT_PER_POLICY,
    CALIBRATION_BASELINE,
    USER_MODEL,
    JUDGE_MODEL,
    JUDGE_PROMPT,
    JUDGE_SAMPLES,
    INCONCLUSIVE,
    AGENT_MODEL,
    AGENT_PROMPT,
    API_BASE,
    API_KEY_ENV,
    TIMEOUT,
    ATTEMPTS,
    MAX_TOKENS,
    RECORD_MODE,
    CASSETTES,
    MAX_COST,
    PRICES,
    RATE_LIMITS,
    SECRET_ENV,
    SECRET_PATTERNS,
)


def readme_table() -> str:
    """The README's options table (header included), which a test keeps equal to this."""
    rows = [option.readme_row() for option in OPTIONS]
    return "\n".join(["| option | ini | default |", "|---|---|---|", *rows])
