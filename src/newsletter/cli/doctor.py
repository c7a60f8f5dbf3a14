"""`newsletter doctor`: the From domain's SPF, DKIM, DMARC and bounce MX, looked up in DNS."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from .output import echo, plural, with_settings

if TYPE_CHECKING:
    from ..doctor import Finding
    from ..settings import Settings

_COLOUR = {"pass": "green", "warn": "yellow", "fail": "red"}


def _nameserver(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    from ..resolver import parse_nameserver

    for value in values:
        try:
            parse_nameserver(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return list(values)


def _print(finding: Finding) -> None:
    label = click.style(f"{finding.status:<4}", fg=_COLOUR[finding.status], bold=True)
    click.echo(f"{label}  {click.style(finding.check, bold=True)}: {finding.message}")
    if finding.fix:
        click.echo(f"      fix: {finding.fix}")


@click.command()
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    metavar="HOST:PORT",
    callback=_nameserver,
    help="Ask this DNS server (an IP address, port 53 unless given; repeatable) "
    "[default: [doctor] nameservers, else the system's resolver].",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report.")
@with_settings
def doctor(nameservers: list[str], as_json: bool, settings: Settings) -> None:
    """Check the From domain's DNS for bulk mail: SPF, DKIM, DMARC, Return-Path MX.

    Each finding is pass, warn or fail, with the fix in words to forward to IT. SPF is
    evaluated for the addresses in [doctor] sending_ips; the DKIM key published for
    [dkim] selector is compared with [dkim] key_file.

    Exit status: 0 when nothing fails (warnings alone still exit 0), 1 when a check
    fails (DNS not answering counts), 2 for a mistake in the config or the options.

    \b
    Examples:
        newsletter doctor
        newsletter doctor --nameserver 127.0.0.1:5353 --json
    """
    from ..doctor import run_doctor

    if as_json:
        report = run_doctor(settings, nameservers=nameservers)
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
        raise SystemExit(report.exit_code)
    echo(f"Checking the DNS of {settings.newsletter.from_address.rpartition('@')[2]}")
    report = run_doctor(settings, nameservers=nameservers, on_finding=_print)
    fails, warns, passes = (report.count(s) for s in ("fail", "warn", "pass"))
    colour = "red" if fails else "yellow" if warns else "green"
    summary = f"{plural(fails, 'failure')}, {plural(warns, 'warning')}, {passes} passed"
    echo(f"{summary} (asked {', '.join(report.nameservers)})", fg=colour)
    raise SystemExit(report.exit_code)
