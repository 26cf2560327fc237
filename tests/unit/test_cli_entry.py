"""The CLI's entry points: one UsageError, whichever way the command is started."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["tinykube.cli", "tinykube.cli.main"])
def test_a_usage_error_is_one_line_under_python_dash_m(module, tmp_path):
    # Before tinykube/cli/common.py, `-m tinykube.cli.main` made a second UsageError class
    # (that of __main__) which the command modules' errors did not match.
    result = subprocess.run(
        [sys.executable, "-m", module, "--socket", str(tmp_path / "none.sock"), "wait",
         "pod/x", "--for", "delete", "--timeout", "1x"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr == 'error: invalid duration "1x" (use e.g. 30s, 2m, 1h)\n'


def test_command_modules_do_not_import_main():
    # The circle main -> commands -> main is gone: commands share tinykube.cli.common.
    from pathlib import Path

    cli = Path(__file__).resolve().parents[2] / "tinykube" / "cli"
    for path in cli.glob("*.py"):
        if path.name not in ("main.py", "__main__.py"):
            assert "from tinykube.cli.main import" not in path.read_text(), path.name
