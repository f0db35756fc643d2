"""Shared fixtures of the market-path tests."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture
def x64():
    """float64 inside the test only (simkit never turns x64 on itself)."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
