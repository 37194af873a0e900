"""The broker fixtures (broker, make_broker, topic) come from compat/python-common/compat_support."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python-common"))

pytest_plugins = ["compat_support"]
