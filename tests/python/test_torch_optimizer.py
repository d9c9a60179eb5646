"""apiary.torch.Optimizer alone (solo=True): the same steps as the wrapped
torch.optim optimizer, gradient accumulation to the target batch, schedulers,
state_dict round trips, the staging path, local updates, and errors with the
engine's messages. Also the package's DHT, error classes and `-m apiary`."""

import os
import subprocess
import sys
import time

import pytest
import torch

import apiary
import apiary.torch as at


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2))


def batches(count, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(size, 6, generator=g)
        yield x, torch.stack([x.sum(1), x[:, 0] * x[:, 1]], 1)


def loss_of(model, x, y):
    return ((model(x) - y) ** 2).mean()


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("stage", [False, True])
def test_one_batch_epochs_take_exactly_the_wrapped_optimizers_steps(stage):
    plain, wrapped = make_model(), make_model()
    reference = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.1)
    opt = at.Optimizer(torch.optim.AdamW(wrapped.parameters(), lr=1e-2, weight_decay=0.1),
                       run="t-exact", target_batch_size=8, batch_size=8, solo=True, stage=stage)
    for x, y in batches(20):
        loss_of(plain, x, y).backward()
        reference.step()
        reference.zero_grad()
        loss_of(wrapped, x, y).backward()
        assert opt.step()
        opt.zero_grad()
    assert opt.epoch == 20
    assert torch.allclose(flat_params(plain), flat_params(wrapped), atol=1e-6)
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(reference.state[p][key], opt.state[q][key], atol=1e-6)
        assert int(opt.state[q]["step"]) == 20


def test_an_epoch_steps_with_the_mean_gradient_of_its_batches():
    plain, wrapped = make_model(), make_model()
    reference = torch.optim.SGD(plain.parameters(), lr=0.1)
    opt = at.Optimizer(torch.optim.SGD(wrapped.parameters(), lr=0.1), run="t-accumulate",
                       target_batch_size=32, batch_size=8, solo=True)
    data = list(batches(8))
    for start in (0, 4):
        group = data[start:start + 4]
        loss = sum(loss_of(plain, x, y) for x, y in group) / len(group)
        loss.backward()
        reference.step()
        reference.zero_grad()
        ended = []
        for x, y in group:
            loss_of(wrapped, x, y).backward()
            ended.append(opt.step())
            opt.zero_grad()
        assert ended == [False, False, False, True]
    assert torch.allclose(flat_params(plain), flat_params(wrapped), atol=1e-6)


def test_finish_steps_with_the_last_partial_epoch():
    plain, wrapped = make_model(), make_model()
    reference = torch.optim.SGD(plain.parameters(), lr=0.1)
    opt = at.Optimizer(torch.optim.SGD(wrapped.parameters(), lr=0.1), run="t-finish",
                       target_batch_size=32, batch_size=8, solo=True)
    data = list(batches(2))  # 16 of the 32 samples: the epoch never completes by itself
    (sum(loss_of(plain, x, y) for x, y in data) / len(data)).backward()
    reference.step()
    for x, y in data:
        loss_of(wrapped, x, y).backward()
        assert not opt.step()
        opt.zero_grad()
    assert opt.epoch == 0 and opt.local_samples == 16
    assert opt.finish(timeout=10.0, quiet=0.2)
    assert opt.epoch == 1 and opt.local_samples == 0
    assert torch.allclose(flat_params(plain), flat_params(wrapped), atol=1e-6)
    assert not opt.finish(timeout=10.0, quiet=0.2)  # nothing left to contribute
    opt.close()


def test_schedulers_and_replaced_gradients_keep_working():
    def train(drop_gradients):
        model = make_model()
        opt = at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.5), run="t-sched",
                           target_batch_size=16, batch_size=8, solo=True)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        for x, y in batches(6):
            loss_of(model, x, y).backward()
            opt.step()
            if drop_gradients:  # drops the gradient views: step() re-points them
                model.zero_grad(set_to_none=True)
            else:
                opt.zero_grad()
            scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5 ** 6)
        assert opt.epoch == 3
        return flat_params(model)

    before = flat_params(make_model())
    kept, dropped = train(False), train(True)
    assert not torch.equal(before, kept)
    assert torch.equal(kept, dropped)


def test_state_dict_round_trip_restores_statistics_and_epoch():
    model = make_model()
    opt = at.Optimizer(torch.optim.Adam(model.parameters(), lr=1e-2), run="t-state",
                       target_batch_size=8, batch_size=8, solo=True)
    for x, y in batches(5):
        loss_of(model, x, y).backward()
        opt.step()
        opt.zero_grad()
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved = opt.state_dict()
    assert saved["epoch"] == 5

    other = make_model(seed=7)
    other.load_state_dict(saved_model)
    resumed = at.Optimizer(torch.optim.Adam(other.parameters(), lr=1e-2), run="t-state2",
                           target_batch_size=8, batch_size=8, solo=True)
    resumed.load_state_dict(saved)
    assert resumed.epoch == 5
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(opt.state[p]["exp_avg_sq"], resumed.state[q]["exp_avg_sq"])
    # Both continue identically.
    for x, y in batches(2, seed=9):
        for m, o in ((model, opt), (other, resumed)):
            loss_of(m, x, y).backward()
            o.step()
            o.zero_grad()
    assert torch.allclose(flat_params(model), flat_params(other), atol=1e-6)


def test_local_updates_step_every_call_and_average_every_n():
    model = make_model()
    opt = at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.05), run="t-local",
                       target_batch_size=8, batch_size=8, solo=True, local_updates=4)
    ended = []
    for x, y in batches(8):
        before = flat_params(model).clone()
        loss_of(model, x, y).backward()
        ended.append(opt.step())
        opt.zero_grad()
        assert not torch.equal(before, flat_params(model))  # an inner step each call
    assert ended == [False, False, False, True] * 2
    assert opt.epoch == 2


def test_outer_step_takes_outer_lr_of_the_inner_delta():
    # Solo, the swarm's mean delta is this peer's own: with no outer momentum
    # the outer step lands outer_lr of the way from the start to where the
    # inner steps went (plain SGD on the same batches).
    plain = make_model()
    sgd = torch.optim.SGD(plain.parameters(), lr=0.05)
    for x, y in batches(4):
        loss_of(plain, x, y).backward()
        sgd.step()
        sgd.zero_grad()
    model = make_model()
    start = flat_params(model).clone()
    opt = at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.05), run="t-outer",
                       target_batch_size=8, batch_size=8, solo=True, local_updates=4,
                       outer_lr=0.5, outer_momentum=0.0)
    for x, y in batches(4):
        loss_of(model, x, y).backward()
        opt.step()
        opt.zero_grad()
    expected = start + 0.5 * (flat_params(plain) - start)
    assert torch.allclose(flat_params(model), expected, atol=1e-6)


def test_errors_are_apiary_exceptions_with_the_engines_messages():
    model = make_model()
    with pytest.raises(apiary.InvalidArgument, match="unknown optimizer option 'bogus'"):
        at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.1), run="e", target_batch_size=8,
                     solo=True, bogus=1)
    with pytest.raises(ValueError, match="compression.gradients"):
        at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.1), run="e", target_batch_size=8,
                     solo=True, compression="zip")
    with pytest.raises(apiary.InvalidArgument, match="listen"):
        at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.1), run="e", target_batch_size=8,
                     listen="nonsense")
    with pytest.raises(ValueError, match="float32"):
        at.Optimizer(torch.optim.SGD(make_model().double().parameters(), lr=0.1), run="e",
                     target_batch_size=8, solo=True)
    opt = at.Optimizer(torch.optim.SGD(model.parameters(), lr=0.1), run="e", target_batch_size=8,
                       solo=True)
    with pytest.raises(ValueError, match="batch_size"):
        opt.step()
    opt.close()
    with pytest.raises(apiary.Error, match="closed"):
        opt.step(batch_size=8)


def test_error_codes_map_to_their_classes():
    cases = {6: apiary.InvalidArgument, 7: apiary.NotFound, 8: apiary.PermissionDenied,
             3: apiary.Unavailable, 2: apiary.DeadlineExceeded, 11: apiary.Error}
    for code, cls in cases.items():
        with pytest.raises(cls, match="message"):
            apiary._apiary._raise(code, "the message")
    assert issubclass(apiary.DeadlineExceeded, TimeoutError)


def test_dht_nodes_store_and_find_values():
    first = apiary.DHT()
    second = apiary.DHT(initial_peers=[first.address])
    try:
        assert second.store(b"greeting", b"hello", apiary.dht_time() + 60)
        value, expiration = first.get(b"greeting")
        assert value == b"hello" and expiration > apiary.dht_time()
        assert first.get(b"missing") is None
        assert first.store(b"dict", b"one", apiary.dht_time() + 60, subkey=b"a")
        assert set(second.get(b"dict", latest=True)) == {b"a"}
    finally:
        second.shutdown()
        first.shutdown()
    with pytest.raises(apiary.Error, match="shut down"):
        first.get(b"greeting")


def test_python_m_apiary_runs_the_command_line():
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "apiary", "--help"], capture_output=True,
                         text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "coordinator" in out.stdout and "join" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "apiary", "no-such-command"], capture_output=True,
                         text=True, env=env, timeout=30)
    assert bad.returncode != 0


def test_wait_for_peers_returns_the_count_seen():
    first_model, second_model = make_model(), make_model()
    first = at.Optimizer(torch.optim.SGD(first_model.parameters(), lr=0.05), run="t-wait",
                         target_batch_size=16, batch_size=8)
    try:
        started = time.monotonic()
        assert first.wait_for_peers(2, timeout=0.6) == 1  # alone: the timeout, in slices
        assert 0.55 <= time.monotonic() - started < 5
        second = at.Optimizer(torch.optim.SGD(second_model.parameters(), lr=0.05), run="t-wait",
                              target_batch_size=16, batch_size=8, peers=[first.address])
        try:
            assert second.wait_for_peers(2, timeout=20) == 2
            assert first.wait_for_peers(2, timeout=20) == 2
            assert first.epoch == second.epoch == 0
        finally:
            second.close()
    finally:
        first.close()
