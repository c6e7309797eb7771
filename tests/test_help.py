"""Help texts true to each command (issue 27): what an option says it does, the command does."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rtdetr_patch.cli import main


def _help(*command: str) -> str:
    done = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert done.exit_code == 0, done.output
    return done.output


def test_revert_promises_no_verification():
    """revert runs nothing in the target interpreter: its --python must not say it verifies."""
    text = _help("revert")
    assert "--python PATH" in text and "verif" not in text.lower()


@pytest.mark.parametrize("command", ["apply", "check", "adopt"])
def test_commands_that_verify_say_so_and_take_a_yaml_name_or_path(command):
    text = _help(command)
    assert "it also runs the verification" in text
    assert "--yaml NAME|PATH" in text


def test_every_command_has_where_options():
    for command in ("apply", "check", "adopt", "revert"):
        text = _help(command)
        assert "--python PATH" in text and "--target DIR" in text, command


def test_a_suggested_command_repeats_the_options_given_quoting_a_path_with_a_space():
    from rtdetr_patch.cli import again

    assert again(None, None) == ""
    assert again("/env/bin/python", "/site") == " --python /env/bin/python --target /site"
    assert again("C:\\My Envs\\yolo\\python.exe", None) == ' --python "C:\\My Envs\\yolo\\python.exe"'
