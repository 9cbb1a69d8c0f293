"""Every command's --help prints and exits 0 (a '%' in a help text once made `s2c --help` crash)."""

import shutil
import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [[], ["demo"], ["snapshot"], ["preview"]], ids=lambda a: " ".join(a) or "call")
def test_s2c_help(argv):
    r = subprocess.run([sys.executable, "-m", "s2c.cli", *argv, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and "--mode" in r.stdout and "Traceback" not in r.stderr
    if not argv or argv == ["demo"]:
        assert "--max-fps" in r.stdout


def test_ramp_default_is_shown_verbatim():
    r = subprocess.run([sys.executable, "-m", "s2c.cli", "snapshot", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert "#%@" in " ".join(r.stdout.split())


@pytest.mark.skipif(shutil.which("s2c-server") is None, reason="console scripts not installed")
@pytest.mark.parametrize("exe", ["s2c-server", "s2c_server"])
def test_server_help(exe):
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--stats-interval" in r.stdout
