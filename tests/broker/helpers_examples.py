"""Starting the shipped example configs (examples/*.conf) as test brokers: shared by test_13
(plain examples), test_40 (TLS examples, with /etc/tidemq paths substituted) and test_42 (proxy)."""
import re
from pathlib import Path

import pytest

from conftest import Broker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def start_example(name, started, subst=None):
    """examples/NAME with its listener ports made OS-chosen and, when `subst` ({old: new}) is
    given, its /etc/tidemq paths replaced; the broker is appended to `started` (the fixture)."""
    text = (EXAMPLES / name).read_text()
    if subst is None:
        text = re.sub(r"(?m)^listener \d+", "listener 0", text)
    else:
        text = re.sub(r"(?m)^listener \d+( \S+)?$", "listener 0 127.0.0.1", text)
        for old, new in subst.items():
            text = text.replace(old, str(new))
        assert "/etc/tidemq" not in text, text
    b = Broker(text, name=name.replace(".", "_"))
    b.config_text = text
    # the fixture adds its own `listener 0 127.0.0.1` first; keep only the example's listeners
    b.write_config = lambda: b.config_path.write_text(text + "\n")
    started.append(b)
    return b.start()


@pytest.fixture
def started():
    """The brokers start_example started; each must stop cleanly."""
    brokers = []
    yield brokers
    problems = [p for b in brokers for p in b.stop()]
    assert not problems, problems
