"""What the test suite and the benchmarks share: free ports, waiting, stopping processes, real
``redis-server`` nodes (standalone, replicated, a cluster) and a dcslog app served in a thread.

Installed with the package so that ``bench/*.py`` import it like any other module (no
``sys.path`` tricks, and no import of ``tests/``). The pytest fixtures stay in ``tests/`` and are
built from these helpers. The service never imports this package (``tests/test_testing_helpers.py``
checks it): nothing here runs in production.

* :mod:`dcslog.testing.ports` -- free ports (``free_port``, ``free_redis_port``)
* :mod:`dcslog.testing.waiting` -- ``wait_for``, ``wait_port``, ``answers``
* :mod:`dcslog.testing.processes` -- ``stop_processes``, ``die_with_parent``
* :mod:`dcslog.testing.redis_servers` -- ``RedisNode``, ``NodeSet``, ``start_replicated``, ``start_cluster``
* :mod:`dcslog.testing.server` -- ``running_app``: ``create_app(settings)`` on a port, in a thread
"""
