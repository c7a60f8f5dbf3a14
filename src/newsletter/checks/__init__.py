"""Pre-send checks: what would make an issue fail in inboxes, found before anyone sends it.

Each check is a small function registered with :func:`check`; it receives a
:class:`Context` (the issue, its rendered parts, a sample message) and yields
:class:`Problem` objects. The registry gives each its severity, which a project may
change or switch off in ``config.toml`` (``[checks.severity]``, ``[checks.disabled]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from functools import cached_property
from typing import Any

import lxml.html

from ..errors import ConfigError, InputError, NewsletterError
from ..issuefile import item_location
from ..models import Issue, Item
from ..pause import checkpoint
from ..render import Build, LoadedIssue, render_issue
from ..render.message import Recipient
from ..settings import Severity

__all__ = [
    "CHECKS",
    "ChecksFailed",
    "Context",
    "Finding",
    "Problem",
    "Report",
    "Severity",
    "check",
    "check_issue",
    "gate",
    "refusal_finding",
    "run_checks",
]

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class Problem:
    """What a check yields: the severity comes from the registry (or config)."""

    message: str
    where: str = ""
    value: str = ""
    fix: str = ""
    #: Overrides the check's default severity for this one problem (e.g. size: warning/error).
    severity: Severity | None = None


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str
    where: str = ""
    value: str = ""
    fix: str = ""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    severity: Severity
    description: str
    run: Callable[[Context], Iterable[Problem]]
    #: Only with `--links` (it makes network requests).
    network: bool = False
    #: Its findings are also shown before every send, not only by `check`.
    announce: bool = False


#: Every check, by name, in the order they run. Filled by the @check decorator.
CHECKS: dict[str, CheckSpec] = {}


def check(
    name: str,
    severity: Severity,
    description: str,
    *,
    network: bool = False,
    announce: bool = False,
) -> Callable[[Callable[[Context], Iterable[Problem]]], Callable[[Context], Iterable[Problem]]]:
    def register(
        function: Callable[[Context], Iterable[Problem]],
    ) -> Callable[[Context], Iterable[Problem]]:
        CHECKS[name] = CheckSpec(name, severity, description, function, network, announce)
        return function

    return register


class Context:
    """Everything a check may look at, computed once and shared."""

    def __init__(self, loaded: LoadedIssue, build: Build) -> None:
        self.loaded = loaded
        self.issue, self.settings, self.build = loaded.issue, loaded.settings, build
        self.source, self.lines = loaded.source, loaded.lines
        self.html, self.text = build.html, build.text
        self._item_where = {
            id(item): self._describe(self.issue, index, item)
            for index, item in enumerate(self.issue.items())
        }

    def _describe(self, issue: Issue, index: int, item: Item) -> str:
        loc = item_location(issue, index)
        line = self.lines.get(loc)
        if loc == ("lead",):
            label = f"lead story {item.title!r}"
        else:
            section = issue.sections[int(loc[1])]
            label = f"section {section.title!r}, item {int(loc[3]) + 1} {item.title!r}"
        return f"{label} ({self.source}:{line})" if line else label

    def where(self, item: Item) -> str:
        return self._item_where.get(id(item), item.title)

    def where_field(self, name: str) -> str:
        line = self.lines.get((name,))
        return f"{self.source}:{line}" if line else self.source

    def where_url(self, url: str) -> str:
        """The story a URL belongs to, or the template part it comes from."""
        for item in self.issue.items():
            if item.url == url or (item.image and url.endswith(item.image.url)):
                return self.where(item)
        return "template (not a story)"

    @cached_property
    def tree(self) -> Any:
        return lxml.html.document_fromstring(self.html)

    @cached_property
    def message(self) -> EmailMessage:
        """A real message as `send` composes it, for a sample subscriber."""
        sample = Recipient("subscriber@example.org", "Sample Subscriber", "sample-token", 1)
        message = self.loaded.message_builder().message_bytes(sample)
        parsed = message_from_bytes(message, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def week_start(self) -> dt.date:
        from ..models import week_range

        return week_range(self.issue.week)[0]


@dataclass
class Report:
    issue: str
    findings: list[Finding] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def announced(self) -> list[Finding]:
        """The findings a send shows before it asks (such as an unsigned relay send)."""
        return [f for f in self.findings if f.check in CHECKS and CHECKS[f.check].announce]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 warnings only, 2 errors."""
        if self.count("error"):
            return 2
        return 1 if self.count("warning") else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "counts": {s: self.count(s) for s in ("error", "warning", "info")},
            "exit_code": self.exit_code,
            "disabled": self.disabled,
            "findings": [asdict(f) for f in self.findings],
        }


class ChecksFailed(NewsletterError):
    exit_code = 2

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__(
            f"{report.issue}: {report.count('error')} pre-send check error(s); fix them "
            "(newsletter check ISSUE) or pass --force"
        )


def _load_check_modules() -> None:
    # Importing registers the checks; here, so the registry is complete before any run.
    from . import auth, content, html, links, palette, textpart  # noqa: F401


def run_checks(context: Context, *, network: bool = False) -> Report:
    _load_check_modules()
    settings = context.settings.checks
    for name in (*settings.severity, *settings.disabled):
        if name not in CHECKS:
            raise ConfigError(f"[checks] {name}: no such check (see the README's list)")
    report = Report(issue=context.issue.week, disabled=dict(settings.disabled))
    for spec in CHECKS.values():
        if spec.name in settings.disabled or (spec.network and not network):
            continue
        for problem in spec.run(context):
            severity = settings.severity.get(spec.name) or problem.severity or spec.severity
            report.findings.append(
                Finding(
                    spec.name, severity, problem.message, problem.where, problem.value, problem.fix
                )
            )
    report.findings.sort(key=lambda f: _ORDER[f.severity])
    return report


#: How a refusal is fixed, by what was refused: `build` and `send` apply the same rules.
_REFUSAL_FIXES = {
    "issue-file": "correct the issue file (or its path); `build` and `send` apply the same rules",
    "template": "correct the template; `build` and `send` render with the same templates",
}


def refusal_finding(error: InputError, check: str = "issue-file") -> Finding:
    """A refusal of the issue file (or a template) as an error finding at its place."""
    return Finding(check, "error", error.what, error.where, "", _REFUSAL_FIXES[check])


def gate(loaded: LoadedIssue, *, force: bool = False) -> Report:
    """Run the checks before a send: raise :class:`ChecksFailed` on errors unless ``force``."""
    report = check_issue(loaded)
    if report.count("error") and not force:
        raise ChecksFailed(report)
    return report


def check_issue(
    loaded: LoadedIssue, *, network: bool = False, build: Build | None = None
) -> Report:
    """Run every enabled check on the loaded issue, rendered in memory.

    Every rule that makes `build` refuse the file is an error here, at the same place,
    and so is a template that does not render: a gate that passes what the send
    refuses would be worse than none.
    """
    refusals = [refusal_finding(error) for error in loaded.refusals]
    try:
        issue = loaded.issue
    except InputError:
        # Not even a lenient reading: nothing can be rendered, so the refusals are all.
        return Report(issue=loaded.source, findings=refusals)
    try:
        build = build or render_issue(loaded)
    except InputError as exc:
        return Report(issue=issue.week, findings=[*refusals, refusal_finding(exc, "template")])
    checkpoint("check")
    report = run_checks(Context(loaded, build), network=network)
    report.findings[:0] = refusals
    report.findings.sort(key=lambda f: _ORDER[f.severity])
    return report
