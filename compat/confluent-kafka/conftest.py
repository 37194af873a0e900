"""The broker fixtures (broker, make_broker, topic) come from compat/python-common/compat_support;
gregor and gregor_broker from testing/python/pytest_gregor (the plugin for applications' suites,
tested by test_pytest_gregor.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python-common"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "testing" / "python"))

pytest_plugins = ["compat_support", "pytest_gregor"]
