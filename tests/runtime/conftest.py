"""Shared fixtures of the runtime tests: the hand-built bundle (handmade.py) and data."""
import numpy as np
import pytest

from handmade import make_bundle, toy_data


@pytest.fixture
def toy():
    return toy_data(60)


@pytest.fixture
def bundle():
    return make_bundle()


def to64(weights):
    return {k: np.asarray(v, np.float64) for k, v in weights.items()}
