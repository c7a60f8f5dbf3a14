"""`newsletter dkim keygen`: a DKIM key and the DNS record that publishes it."""

from __future__ import annotations

from pathlib import Path

import click

from .output import display, echo


@click.group(name="dkim")
def dkim_group() -> None:
    """DKIM signing keys."""


@dkim_group.command()
@click.option("--selector", required=True, help="The s= selector, e.g. s1 or 2024a.")
@click.option("--domain", required=True, help="The d= domain: the From address's domain.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the private key [default: dkim-SELECTOR.pem].",
)
@click.option(
    "--bits",
    type=click.IntRange(1024, 4096),
    default=2048,
    show_default=True,
    help="RSA key size (2048 fits every DNS provider; 1024 is the least receivers accept).",
)
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def keygen(selector: str, domain: str, out: Path | None, bits: int, force: bool) -> None:
    """Write a new DKIM private key and print the DNS TXT record to publish.

    The key file is written with mode 0600 and never printed; an existing file is not
    replaced without --force. Publish the record, then add the printed [dkim] lines to
    config.toml: a relative key_file is read from the config file's folder.

    \b
    Example:
        newsletter dkim keygen --selector s1 --domain example.org --out keys/s1.pem
    """
    from ..mailauth import create_key

    path = out or Path(f"dkim-{selector}.pem")
    record = create_key(path, selector, domain, bits=bits, force=force)
    echo(f"Wrote a {bits}-bit private key to {display(path)} (mode 0600; keep it out of git).")
    echo("")
    echo("Publish this DNS TXT record:")
    echo(f"  name:  {record.name}")
    echo(f"  value: {record.zone_value()}")
    echo("")
    echo("As a zone-file line:")
    echo(f"  {record.name}. IN TXT ( {record.zone_value()} )")
    echo("")
    echo("Then add to config.toml:")
    echo("  [dkim]")
    echo(f'  domain = "{domain.lower()}"')
    echo(f'  selector = "{selector.lower()}"')
    echo(f"  key_file = {_toml_string(str(path))}")


def _toml_string(value: str) -> str:
    import json

    # A JSON string is a valid TOML basic string (Windows backslashes, quotes).
    return json.dumps(value, ensure_ascii=False)
