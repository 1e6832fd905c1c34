"""The `siyu` command line, composed from one Typer app per package so no step imports another just to add a command.

Each package owns its commands (`siyu/data/cli.py`, `features/cli.py`, `training/cli.py`,
`pricing/cli.py`, `serving/cli.py`); this module only mounts them. Commands import their
libraries lazily, so `siyu --help` stays fast.
"""

from __future__ import annotations

import typer

from features.cli import app as features_app
from pricing.cli import app as price_app
from pricing.cli import bootstrap_demand, train_demand
from serving.cli import bento, recommend_app, serve
from siyu.cli_support import DataDir, console, settings_for
from siyu.data.cli import app as data_app
from tiers.cli import app as tiers_app
from training.cli import app as train_app
from training.cli import evaluate_conversion, tune_conversion
from training.registry_cli import models_app, promote
from training.sequence.cli import bootstrap_sequence, evaluate_app, train_sequence, tune_app

app = typer.Typer(help="siyu: recommendation and dynamic pricing for private-domain retail.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
# The demand model lives in pricing/, but ML engineers train every model under `siyu train`.
train_app.command("demand")(train_demand)
train_app.command("sequence")(train_sequence)
app.add_typer(train_app, name="train")
app.add_typer(price_app, name="price")
evaluate_app.command("conversion")(evaluate_conversion)
tune_app.command("conversion")(tune_conversion)
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(tune_app, name="tune")
app.command("promote")(promote)
app.add_typer(tiers_app, name="tiers")
app.add_typer(models_app, name="models")
app.command("serve")(serve)
app.add_typer(recommend_app, name="recommend")
app.command("bento")(bento)


@app.command("bootstrap")
def bootstrap(data_dir: DataDir = None) -> None:
    """Make a servable system from nothing: a small world (if no data), features, conversion, demand and
    decision-path models.

    Each model is trained only if no @champion of it is registered yet, so re-running is cheap.
    """
    from training.pipeline import bootstrap as bootstrap_conversion

    settings = settings_for(data_dir)
    bootstrap_conversion(settings, console=console)
    bootstrap_demand(settings)
    bootstrap_sequence(settings)


if __name__ == "__main__":
    app()
