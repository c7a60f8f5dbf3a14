"""`check` errors on every issue file that `build` and `send` refuse, at the same place.

The cases are generated from the model: every validator and every field constraint of
the issue model must have at least one bad value here (a test fails when one is added
without a case), and each case must make `build` refuse and `check` report the same
refusal as an error at the same location.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from newsletter import InputError, Settings, build_issue, issue_from_text
from newsletter.checks import check_issue
from newsletter.models import Image, Issue, Item, Section
from tests.conftest import SAMPLE_ISSUE

SAMPLE = tomllib.loads(SAMPLE_ISSUE.read_text(encoding="utf-8"))

Mutation = Callable[[dict[str, Any]], None]


def setter(*path: str | int, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def deleter(*keys: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for key in keys:
            del data[key]

    return mutate


def duplicate_story(data: dict[str, Any]) -> None:
    data["sections"][1]["items"].append(copy.deepcopy(data["sections"][0]["items"][0]))


LEAD_IMAGE = ("lead", "image")

#: (model, validator or constrained field) -> bad inputs that it must refuse.
CASES: dict[tuple[str, str], list[tuple[str, Mutation]]] = {
    ("Issue", "_week"): [
        ("week that does not exist", setter("week", value="2023-W99")),
        ("week not ISO", setter("week", value="2023-25")),
    ],
    ("Issue", "_newsletter"): [("name with a line break", setter("newsletter", value="A\nB"))],
    ("Issue", "_subject"): [
        ("empty subject", setter("subject", value="")),
        ("subject too long", setter("subject", value="s" * 201)),
        ("subject with a line break", setter("subject", value="a\nb")),
    ],
    ("Issue", "_preheader"): [("preheader too long", setter("preheader", value="p" * 151))],
    ("Issue", "_whole_issue"): [
        ("date outside the week", setter("date", value=dt.date(2023, 7, 3))),
        ("no stories", deleter("lead", "sections")),
        ("the same story twice", duplicate_story),
    ],
    ("Issue", "number"): [("number 0", setter("number", value=0))],
    ("Section", "_title"): [("empty section title", setter("sections", 0, "title", value=""))],
    ("Item", "_title"): [("empty story title", setter("lead", "title", value=""))],
    ("Item", "_url"): [
        ("URL without a scheme", setter("lead", "url", value="www.example.org/x")),
        ("javascript: URL", setter("sections", 0, "items", 1, "url", value="javascript:alert(1)")),
        ("URL with a space", setter("lead", "url", value="https://example.org/a b")),
    ],
    ("Item", "_kind"): [("kind of two words", setter("lead", "kind", value="Big news"))],
    ("Image", "_url"): [
        ("empty image URL", setter(*LEAD_IMAGE, "url", value="")),
        ("protocol-relative image", setter(*LEAD_IMAGE, "url", value="//cdn.example.org/a.png")),
        ("ftp image", setter(*LEAD_IMAGE, "url", value="ftp://example.org/a.png")),
    ],
    ("Image", "_alt"): [("image without alt text", setter(*LEAD_IMAGE, "alt", value=""))],
    ("Image", "width"): [
        ("image width 0", setter(*LEAD_IMAGE, "width", value=0)),
        ("image width 5000", setter(*LEAD_IMAGE, "width", value=5000)),
    ],
    # Not validators, but rules every model applies: unknown keys, missing keys, types.
    ("*", "extra=forbid"): [("misspelt key", setter("subjcet", value="x"))],
    ("*", "required"): [("missing subject", deleter("subject"))],
    ("*", "types"): [("number as text", setter("number", value="one"))],
    # [build] allow_linkless_items = false (the default).
    ("settings", "linkless"): [("story with url = ''", setter("lead", "url", value=""))],
}

#: Validators that fill in defaults and can refuse nothing.
NEVER_REFUSE = {("Item", "_default_id")}


def _validators() -> set[tuple[str, str]]:
    found = set()
    for model in (Issue, Section, Item, Image):
        decorators = model.__pydantic_decorators__
        for name in (*decorators.field_validators, *decorators.model_validators):
            found.add((model.__name__, name))
        for field_name, info in model.model_fields.items():
            if info.metadata:  # ge/gt/le constraints
                found.add((model.__name__, field_name))
    return found


def test_every_validator_of_the_model_has_a_bad_case() -> None:
    validators = _validators()
    assert validators - NEVER_REFUSE <= set(CASES), (
        f"add bad cases for {sorted(validators - NEVER_REFUSE - set(CASES))}"
    )
    assert {key for key in CASES if key[0] in {"Issue", "Section", "Item", "Image"}} <= validators


def toml(data: dict[str, Any]) -> str:
    """Just enough TOML for an issue file: scalars, inline tables, arrays of tables."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | dt.date):
            return str(value) if not isinstance(value, dt.date) else value.isoformat()
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items()) + " }"
        return json.dumps(value)

    def table(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            # The lead's image is an inline table, as in the sample.
            inline = isinstance(value, dict) and prefix == "lead"
            if inline or not isinstance(value, dict | list):
                lines.append(f"{key} = {scalar(value)}")
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and prefix != "lead":
                lines.append(f"\n[{name}]")
                table(value, name)
            elif isinstance(value, list):
                for element in value:
                    lines.append(f"\n[[{name}]]")
                    table(element, name)

    table(data, "")
    return "\n".join(lines) + "\n"


def test_the_dumper_round_trips_the_sample() -> None:
    assert tomllib.loads(toml(SAMPLE)) == SAMPLE


CASE_LIST = [
    pytest.param(mutation, id=f"{key[0]}.{key[1]}: {label}")
    for key, cases in CASES.items()
    for label, mutation in cases
]


@pytest.mark.parametrize("mutation", CASE_LIST)
def test_check_errors_where_build_refuses(
    mutation: Mutation, settings: Settings, tmp_path: Path
) -> None:
    data = copy.deepcopy(SAMPLE)
    mutation(data)
    text = toml(data)
    out = tmp_path / "out"
    with pytest.raises(InputError) as refused:
        build_issue(issue_from_text(text, settings, "issues/2023-W25.toml"), out)
    assert not out.exists(), "a refused build wrote files"
    report = check_issue(issue_from_text(text, settings, "issues/2023-W25.toml"))
    assert report.exit_code == 2
    errors = [(f.where, f.message) for f in report.findings if f.severity == "error"]
    assert (refused.value.where, refused.value.what) in errors, (str(refused.value), errors)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # The two cases found in review: both passed `check` with "0 errors".
        ('url = "https://newsroom.example.org/news/2023/06/22/montenegro', 'url = "'),
        ('url = "https://newsroom.example.org/news/2023/06/22/', 'url = "www.example.org/'),
    ],
    ids=["empty url", "url without scheme"],
)
def test_check_and_build_exit_2_from_the_command_line(project: Path, old: str, new: str) -> None:
    issue = project / "issues" / "2023-W25.toml"
    text = issue.read_text(encoding="utf-8")
    if new == 'url = "':
        start = text.index(old)
        end = text.index('"', start + len('url = "'))
        text = text[:start] + 'url = ""' + text[end + 1 :]
    else:
        text = text.replace(old, new, 1)
    issue.write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "newsletter"]
    results = {
        name: subprocess.run(
            [*command, name, "issues/2023-W25.toml"], cwd=project, capture_output=True, text=True
        )
        for name in ("build", "check")
    }
    assert results["build"].returncode == 2 and results["check"].returncode == 2
    where = results["build"].stderr.split(": ", 1)[1].rsplit(": ", 1)[0]
    assert "lead story" in where and where in results["check"].stdout
    assert "Traceback" not in results["build"].stderr + results["check"].stderr
