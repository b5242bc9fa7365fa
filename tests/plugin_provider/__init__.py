"""A provider package that lives outside llmbatch, plugged in the way a third party would.

``minibatch`` is a deliberately small provider: its own package, registered in the
``llmbatch.providers`` entry-point group by a ``*.dist-info/entry_points.txt`` the tests write
(no change to llmbatch's ``pyproject.toml``), speaking a Message-Batches style API over plain
httpx2 to the emulator's ``/anthropic`` surface. The tests show that it runs the contract
scenarios every built-in provider runs and a job end to end through the services, with no
module of llmbatch naming it.
"""
