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
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

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


#: Where each model first appears in the sample issue.
WHERE_MODEL: dict[type[Any], tuple[str | int, ...]] = {
    Issue: (),
    Section: ("sections", 0),
    Item: ("sections", 0, "items", 0),
    Image: ("lead", "image"),
}


def _bad_values(annotation: Any) -> list[Any]:
    """Values that a field of this type may refuse: wrong types, empties, extremes."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    values: list[Any] = []
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if origin is str:
            values += ["", " ", "two\nlines", "x" * 5000, 5]
        elif origin is bool:
            values += ["yes", 2]
        elif origin is int:
            values += [0, -1, 10**9, "one", 1.5]
        elif origin is dt.date:
            values += ["someday", 20230623]
        elif origin is list:
            values += ["not a list", [1, 2]]
        elif isinstance(origin, type) and issubclass(origin, BaseModel):
            values += ["not a table", {}]
    return values


def _generated_cases() -> list[Any]:
    cases = []
    for model, at in WHERE_MODEL.items():
        for name, info in model.model_fields.items():
            for value in _bad_values(info.annotation):
                label = f"{model.__name__}.{name} = {str(value)[:20]!r}"
                cases.append(pytest.param(setter(*at, name, value=value), id=label))
            if info.is_required():
                cases.append(
                    pytest.param(_remove(*at, name), id=f"{model.__name__}.{name} missing")
                )
    return cases


def _remove(*path: str | int) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


@pytest.mark.parametrize("mutation", _generated_cases())
def test_generated_bad_values_agree(mutation: Mutation, settings: Settings) -> None:
    """Every field of every model, given values of the wrong type, empty or extreme:
    whatever `build` refuses, `check` reports at the same place; whatever `build`
    accepts, `check` raises no issue-file error about."""
    data = copy.deepcopy(SAMPLE)
    mutation(data)
    text = toml(data)
    report = check_issue(issue_from_text(text, settings, "issues/2023-W25.toml"))
    refusals = [(f.where, f.message) for f in report.findings if f.check == "issue-file"]
    try:
        build_issue(issue_from_text(text, settings, "issues/2023-W25.toml"), None)
    except InputError as refused:
        assert report.exit_code == 2
        assert (refused.where, refused.what) in refusals
    else:
        assert refusals == []


def test_check_names_every_refusal_at_once(settings: Settings) -> None:
    data = copy.deepcopy(SAMPLE)
    for mutation in (
        setter("lead", "url", value=""),
        setter("subjcet", value="misspelt"),
        setter("subject", value="two\nlines"),
        setter("sections", 1, "items", 0, "kind", value="two words"),
        setter(*LEAD_IMAGE, "alt", value=""),
    ):
        mutation(data)
    report = check_issue(issue_from_text(toml(data), settings, "issues/2023-W25.toml"))
    places = [f.where for f in report.findings if f.check == "issue-file"]
    assert len(places) == 5, places
    for ending in ("url", "subjcet", "subject", "kind", "image"):
        assert any(p.endswith(ending) or ending in p for p in places), (ending, places)


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
