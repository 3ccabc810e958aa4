"""What every command shares: the Typer application settings, one-line errors instead of tracebacks,
and progress bars."""

from __future__ import annotations

import contextlib
import enum
import functools
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nucleaizer_tf.errors import NucleaizerError, one_line
from nucleaizer_tf.extras import missing_extra_message
from nucleaizer_tf.progress import Reporter


class Planes(str, enum.Enum):
    """`--planes`: how Z and time stacks are read; the values of `nucleaizer_tf.io.read.PLANES` (a test checks), not
    imported from there so that the CLI starts without loading the image readers."""

    max = "max"
    each = "each"


def new_app(name: str, help: str) -> typer.Typer:
    """A Typer (sub-)application with the settings every group shares: `--help` when called bare, no
    shell-completion options, no rich tracebacks (`fail_cleanly` reports errors) and plain help text."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


class PanelledCommand(typer.core.TyperCommand):
    """A command whose plain-text `--help` lists its options in sections, one per `rich_help_panel`
    (in the order the panels first appear; options without one under "Options")."""

    def format_options(self, ctx, formatter) -> None:
        """Arguments, then one section of options per panel."""
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                title = "Arguments" if param.param_type_name == "argument" else \
                    getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(title, []).append(record)
        for title in sorted(sections, key=lambda t: t != "Arguments"):  # stable: panels keep their order
            with formatter.section(title):
                formatter.write_dl(sections[title])


console = Console(stderr=True)


def fail_cleanly(command):
    """Turn the errors a user can cause (bad files, folders, arguments, an unwritable or full disk, an
    optional extra not installed) into one line, `error: ...`, and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ModuleNotFoundError as exc:  # an optional extra the command needs is not installed
            typer.echo(f"error: {missing_extra_message(exc)}", err=True)
            raise typer.Exit(2) from None
        except (NucleaizerError, OSError, ValueError, MemoryError) as exc:
            typer.echo(f"error: {one_line(exc)}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False, total: int | None = None):
    """Yield `advance(label)`; draws a bar on a terminal (stderr), stays silent when piped or quiet."""
    if quiet or not sys.stderr.isatty():
        yield lambda label=None: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[item]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, item="")

        def advance(label=None):
            progress.update(task, advance=1, item=str(label or ""))

        yield advance


class CliReporter(Reporter):
    """The progress protocol (`nucleaizer_tf.progress.Reporter`) on a terminal: a bar per stage, notes
    on stderr; silent with `quiet`."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None):
        with progress_bar(name, self.quiet, total=total) as advance:
            yield advance

    def note(self, text: str) -> None:
        if not self.quiet:
            typer.echo(text, err=True)


