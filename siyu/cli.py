"""The `siyu` command line, composed from one Typer app per package so no step imports another just to add a command.

Each package owns its commands (`siyu/data/cli.py`, `features/cli.py`, `training/cli.py`,
`pricing/cli.py`, `serving/cli.py`); this module only mounts them. Commands import their
libraries lazily, so `siyu --help` stays fast.
"""

from __future__ import annotations

import typer

from features.cli import app as features_app
from pricing.cli import app as price_app
from pricing.cli import train_demand
from serving.cli import serve
from siyu.data.cli import app as data_app
from training.cli import app as train_app
from training.cli import bootstrap_cmd

app = typer.Typer(help="siyu: recommendation and dynamic pricing for private-domain retail.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
# The demand model lives in pricing/, but ML engineers train every model under `siyu train`.
train_app.command("demand")(train_demand)
app.add_typer(train_app, name="train")
app.add_typer(price_app, name="price")
app.command("bootstrap")(bootstrap_cmd)
app.command("serve")(serve)


if __name__ == "__main__":
    app()
