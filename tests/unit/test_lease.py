"""LeaseKeeper: renewals, a lease taken over, and the cut-off when the store is gone."""

from __future__ import annotations

import threading
from typing import Any

from orchestrator.engine.lease import CUT_OFF_FRACTION, LeaseKeeper, owner_name, owner_node
from tests.helpers.wait import wait_until


class Leases:
    """The leases-repository seam: renewals fail while ``down``, or answer ``held``."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.held = True
        self.renewals = 0

    def renew(self, run_id: str, owner: str, seconds: float) -> bool:
        if self.down.is_set():
            raise ConnectionError("server closed the connection unexpectedly")
        self.renewals += 1
        return self.held


class Store:
    def __init__(self) -> None:
        self.leases = Leases()


def keeper(store: Any, seconds: float = 0.3) -> LeaseKeeper:
    lease = LeaseKeeper(store, "r1", "n1:1:aa", seconds)
    lease.start()
    return lease


def test_a_keeper_renews_until_closed() -> None:
    store = Store()
    lease = keeper(store)
    wait_until(lambda: store.leases.renewals >= 3, 5, "three renewals")
    lease.close()
    count = store.leases.renewals
    assert not lease.lost.is_set() and not lease.cut_off.is_set()
    assert store.leases.renewals == count, "no renewal after close"


def test_a_lease_taken_over_is_lost() -> None:
    store = Store()
    store.leases.held = False
    lease = keeper(store)
    assert lease.lost.wait(5)
    assert not lease.cut_off.is_set()
    lease.close()


def test_no_renewal_for_two_thirds_of_the_lease_cuts_the_holder_off() -> None:
    store = Store()
    lease = keeper(store, seconds=0.6)
    wait_until(lambda: store.leases.renewals >= 1, 5, "a renewal")
    store.leases.down.set()
    assert lease.cut_off.wait(5)
    assert not lease.lost.is_set(), "cut off is not taken over: it does not know"
    store.leases.down.clear()
    wait_until(lambda: store.leases.renewals >= 2, 5, "renewing again")
    assert lease.cut_off.is_set(), "stays set: the worker has stopped acting on the run"
    lease.close()
    assert CUT_OFF_FRACTION < 1, "stops before the lease can expire"


def test_owner_names_carry_their_node() -> None:
    assert owner_node(owner_name("m-1")) == "m-1"
    assert owner_node(owner_name("m-1", "reaper")) == "m-1"
    assert owner_name("m-1", "reaper").endswith(":reaper")
