"""Models compiled once for the tests: the trained MNIST network at batch 1 and 360."""

import os

import pytest

import cnnc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MNIST = os.path.join(ROOT, "models", "mnist_cnn.cnn")
MNIST_WEIGHTS = os.path.join(ROOT, "models", "mnist_cnn.safetensors")


def _compile(factory, name, **flags):
    path = str(factory.mktemp("models") / name)
    cnnc.compile(MNIST, output=path, weights=MNIST_WEIGHTS, **flags).close()
    return path


@pytest.fixture(scope="session")
def mnist_path(tmp_path_factory):
    return _compile(tmp_path_factory, "mnist.so")


@pytest.fixture(scope="session")
def mnist360_path(tmp_path_factory):
    return _compile(tmp_path_factory, "mnist360.so", batch=360)


@pytest.fixture
def mnist(mnist_path):
    with cnnc.load(mnist_path, threads=1) as m:
        yield m
