"""The ``hpo`` command. Thin: parse, call the core, format.

Every error the core raises on purpose (a bad storage URL, an unknown study, a duplicate name,
a schema from a newer hposcale, a malformed search space, an unknown algorithm or setting,
an objective that names nothing, a Ray cluster that cannot be reached)
becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import SQLAlchemyError

from db.errors import StoreError
from hpo.algorithms import AlgorithmError
from hpo.cli.db_commands import db_app
from hpo.cli.demo import demo
from hpo.cli.errors import CLIError
from hpo.cli.mup_commands import mup_app
from hpo.cli.scaling_commands import recommend_command, scaling_app
from hpo.cli.serve import serve
from hpo.cli.spaces_commands import spaces_app
from hpo.cli.study_commands import study_app
from hpo.cli.sweep_commands import sweep_app
from scaling.errors import ScalingError
from search_spaces import SpaceError
from workers.errors import SweepError

app = typer.Typer(
    name="hpo",
    help="hposcale: hyperparameter optimization and scaling laws for pretraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(study_app, name="study")
app.add_typer(spaces_app, name="spaces")
app.add_typer(sweep_app, name="sweep")
app.add_typer(mup_app, name="mup")
app.add_typer(scaling_app, name="scaling")
app.command("recommend")(recommend_command)
app.command("serve")(serve)
app.command("demo")(demo)

EXIT_USAGE = 2


def main() -> None:
    try:
        app()
    except (StoreError, CLIError, SpaceError, AlgorithmError, SweepError, ScalingError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:  # a database error the store did not anticipate
        _fail(f"database error: {str(exc).splitlines()[0]}")
    except KeyboardInterrupt:
        _fail("interrupted")


def _fail(message: str) -> None:
    print(f"hpo: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
