"""ordered_map's worker pool and Ctrl-C: workers never answer SIGINT, the parent always does, even
when the Ctrl-C arrives while the pool is starting."""

from __future__ import annotations

import multiprocessing.pool
import os
import signal

import pytest

from llmctl.parallel import ordered_map


def test_results_come_back_in_input_order():
    assert list(ordered_map(abs, range(-20, 0), workers=2)) == list(range(20, 0, -1))


def test_a_ctrl_c_while_the_pool_starts_is_not_lost(monkeypatch, request):
    real = multiprocessing.pool.Pool.__init__

    def interrupted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands mid-start
        real(self, *args, **kwargs)

    monkeypatch.setattr(multiprocessing.pool.Pool, "__init__", interrupted)
    # as in a terminal: a run started in the background (`cmd &` in a script) inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    with pytest.raises(KeyboardInterrupt):
        list(ordered_map(abs, range(10), workers=2))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
