"""spec2img.engine_ray.FanOut's failure rule without a cluster (a stand-in for the three Ray calls it
makes): a task lost after Ray's retries is split and retried one item per task, so only the item
that keeps killing its worker is reported lost and every other item still comes back."""

from __future__ import annotations

import types

from spec2img.engine_ray import FanOut, RaySession, lost_error


class LostWorker(Exception):
    """Plays ray.exceptions.RayError (e.g. WorkerCrashedError after the retries)."""


class FakeRay:
    exceptions = types.SimpleNamespace(RayError=LostWorker)

    def __init__(self, poison):
        self.poison, self.calls, self.cancelled, self.shut = poison, [], [], False

    def run(self, items):
        self.calls.append(list(items))
        return ("ref", len(self.calls), tuple(items))

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        items = ref[2]
        if self.poison in items:
            raise LostWorker(f"worker died running {list(items)}")
        return [x * 10 for x in items]

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)

    def cluster_resources(self):
        return {"CPU": 1}

    def is_initialized(self):
        return not self.shut

    def shutdown(self):
        self.shut = True


def test_a_lost_batch_is_retried_item_by_item_and_only_the_poison_is_lost():
    ray = FakeRay(poison=5)
    fan = FanOut(RaySession(ray, owned=True), [[1, 2, 3], [4, 5, 6], [7]], ray.run)
    got, lost = {}, {}
    for batch, result, exc in fan:
        if exc is None:
            got.update(zip(batch, result))
        else:
            assert len(batch) == 1
            lost[batch[0]] = lost_error(exc)
    fan.close()
    assert got == {x: 10 * x for x in (1, 2, 3, 4, 6, 7)}
    assert list(lost) == [5] and "lost with its Ray worker (LostWorker" in lost[5] and "rerun" in lost[5]
    assert [4, 5, 6] in ray.calls and [4] in ray.calls and [5] in ray.calls and [6] in ray.calls
    assert ray.shut  # an instance this process started is stopped at the end


def test_in_flight_tasks_are_bounded_and_cancelled_on_close():
    ray = FakeRay(poison=None)
    fan = FanOut(RaySession(ray, owned=False), [[i] for i in range(20)], ray.run)
    it = iter(fan)
    next(it)
    assert len(fan.running) <= 2 and len(ray.calls) <= 3  # 2 tasks per CPU in flight, not all 20
    fan.close()
    assert ray.cancelled and not fan.running and not fan.waiting
    assert not ray.shut  # someone else's cluster is left running
