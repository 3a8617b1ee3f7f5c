"""``agentwatch investigations``: work on the ledgers in the configured database, no server needed."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from agentwatch.soc.auth.cli import ConfigOpt, Stores, cli_actor, console

investigations_app = typer.Typer(help="Work on the investigation ledgers.", no_args_is_help=True)


@investigations_app.command("seal-legacy")
def seal_legacy(
    config: ConfigOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="seal without asking")] = False,
) -> None:
    """Seal the ledger heads written before heads were sealed (each whose chain verifies).

    Run it once after upgrading from such a version, on a database you trust as it is: it vouches
    for every head without a MAC whose chain holds. Prints {"sealed", "left"}; ``left`` counts the
    heads whose chain did not verify (they stay unsealed and keep failing)."""
    from agentwatch.soc.audit import AuditEntry
    from agentwatch.soc.investigations import seal
    from agentwatch.soc.investigations.ledger import seal_unsealed

    if not yes and not typer.confirm("seal every ledger head without a MAC whose chain verifies?", err=True):
        raise typer.Exit(1)
    s = Stores(config)
    try:
        with console.status("checking and sealing the ledgers without a MAC"):
            sealed, left = seal_unsealed(s.engine, seal.ledger_key(s.settings))
        s.audit.append(
            AuditEntry(
                "investigations.seal_legacy",
                **cli_actor(),
                target="investigations",
                status=200,
                details={"sealed": sealed, "left": left},
            )
        )
        typer.echo(orjson.dumps({"sealed": sealed, "left": left}).decode())
        console.print(f"sealed {sealed} ledger heads; {left} left unsealed (their chain does not verify)")
    finally:
        s.close()


def install(app: typer.Typer) -> None:
    app.add_typer(investigations_app, name="investigations")
