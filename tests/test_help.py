"""Every command's ``--help`` renders (option help is rich markup: a stray ``[/x]`` crashed it)."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from archbench.cli import _load_commands
from archbench.cli.app import app


def _paths() -> list[list[str]]:
    _load_commands()
    root = typer.main.get_command(app)
    out: list[list[str]] = [[]]

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return out


@pytest.mark.parametrize("path", _paths(), ids=lambda p: " ".join(p) or "archbench")
def test_help_renders(path):
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="archbench")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Usage" in result.output
