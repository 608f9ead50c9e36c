"""The memory guard asks psutil (no hand-parsed /proc/meminfo)."""

import psutil

from fscc_sklearn import _resources


def test_available_memory_is_psutil_capped_by_the_cgroup(monkeypatch):
    class Fake:
        available = 123_456_789

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Fake())
    monkeypatch.setattr(_resources, "_cgroup_free", lambda: None)
    assert _resources.available_memory() == 123_456_789
    monkeypatch.setattr(_resources, "_cgroup_free", lambda: 1000)
    assert _resources.available_memory() == 1000


def test_no_meminfo_parsing_left():
    source = open(_resources.__file__, encoding="utf-8").read()
    assert "/proc/meminfo" not in source
