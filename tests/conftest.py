"""Shared test set-up. Area-specific fixtures live in tests/_<area>_fixtures.py."""

import os

import pytest


@pytest.fixture(params=["py", "fast"])
def impl_name(request):
    """Run a kernel test against both the compiled kernel and its twin."""
    return request.param


def pytest_configure(config):
    os.environ.setdefault("S2C_TEST", "1")
