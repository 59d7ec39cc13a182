"""cnnc.compile_train and cnnc.Trainer: steps that lower the loss, gradients by name,
the step in two halves, evaluation, weights in and out, and the errors of bad batches."""

import os

import numpy as np
import pytest

import cnnc
from conftest import ROOT

MLP = os.path.join(ROOT, "models", "mlp.cnn")


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((8, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, 8).astype(np.int64))


@pytest.fixture
def trainer():
    with cnnc.compile_train(MLP, batch=8, threads=1, optimizer="sgd", lr=0.05,
                            momentum=0.9, random_weights=1) as t:
        yield t


def test_shapes_and_names(trainer):
    assert trainer.batch == 8 and trainer.input_shape == (8, 1, 28, 28)
    assert trainer.label_kind == "class" and trainer.label_shape == (8,)
    assert trainer.output_shape == (8, 10)
    assert trainer.param_names[:2] == ["fc1.weight", "fc1.bias"]
    assert trainer.num_trainable == 6 and trainer.param_shapes[0] == (128, 784)


def test_steps_lower_the_loss(trainer, batch):
    first = trainer.step(*batch)
    for _ in range(20):
        last = trainer.step(*batch)
    assert trainer.steps == 21
    assert last < 0.5 * first


def test_two_halves_equal_a_step(trainer, batch):
    before = trainer.params()
    loss = trainer.compute_gradients(*batch)
    grads = {k: v.copy() for k, v in trainer.gradients().items()}
    assert set(grads) == set(trainer.param_names[:6]) and grads["fc3.bias"].shape == (10,)
    trainer.apply_gradients()
    after = trainer.params()
    # The first SGD step with momentum: buf = g, p - lr * g.
    np.testing.assert_allclose(after["fc2.weight"], before["fc2.weight"] - 0.05 *
                               grads["fc2.weight"], rtol=0, atol=1e-7)
    assert np.isfinite(loss)


def test_evaluate_changes_nothing(trainer, batch):
    before = trainer.params()
    loss, logits = trainer.evaluate(*batch)
    assert logits.shape == (8, 10) and np.isfinite(loss)
    for k, v in trainer.params().items():
        np.testing.assert_array_equal(v, before[k])


def test_weights_in_and_out(trainer, batch, tmp_path):
    trainer.step(*batch)
    path = str(tmp_path / "w.safetensors")
    trainer.save(path)
    saved = trainer.params()
    trainer.set_params({"fc1.bias": np.zeros(128, np.float32)})
    assert not trainer.params()["fc1.bias"].any()
    trainer.load(path)
    for k, v in trainer.params().items():
        np.testing.assert_array_equal(v, saved[k])
    with cnnc.compile(MLP, weights=path, batch=8) as m:
        np.testing.assert_allclose(m(batch[0]), trainer.evaluate(*batch)[1], rtol=1e-5,
                                   atol=1e-5)


def test_bad_batches(trainer, batch):
    x, y = batch
    with pytest.raises(cnnc.TrainError, match="10"):
        trainer.step(x, np.full(8, 10, np.int64))
    with pytest.raises(cnnc.DtypeError):
        trainer.step(x, y.astype(np.int32))
    with pytest.raises(cnnc.ShapeError):
        trainer.step(x[:4], y)
    before = trainer.params()
    with pytest.raises(cnnc.TrainError):
        trainer.step(np.full_like(x, np.nan), y)
    for k, v in trainer.params().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(KeyError):
        trainer.set_params({"nope": np.zeros(1, np.float32)})
