"""The example configs in examples/ load and serve as their comments say.

Each example's listener ports are replaced by OS-chosen ones (port 0) so the test can run in
parallel with others; everything else is used exactly as shipped."""
import pytest

from helpers import Client, unique_topic
from helpers_examples import EXAMPLES, start_example, started  # noqa: F401 - `started` is a fixture


# TLS examples name certificate files under /etc/tidemq: test_40_tls.py runs them with its own
PLAIN_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.conf") if "certfile" not in p.read_text())


@pytest.mark.parametrize("name", PLAIN_EXAMPLES)
def test_example_config_loads_and_serves(name, started):
    b = start_example(name, started)
    topic = unique_topic("ex")
    sub = Client(b)
    try:
        sub.subscribe(topic, 1)
        pub = Client(b)
        try:
            pub.publish(topic, b"hello", qos=1)
            assert sub.expect_one().payload == b"hello"
        finally:
            pub.close()
    finally:
        sub.close()


def test_mount_point_example_keeps_tenants_apart(started):
    b = start_example("mount_point.conf", started)
    assert len(b.ports) == 2
    (_, port_a), (_, port_b) = b.ports
    clients = []
    try:
        b.port = port_a
        a_sub = Client(b)
        clients.append(a_sub)
        a_sub.subscribe("#", 0)
        b.port = port_b
        b_sub, b_pub = Client(b), Client(b)
        clients += [b_sub, b_pub]
        b_sub.subscribe("#", 0)
        b_pub.publish("room/1", b"from b", qos=1)
        got = b_sub.expect_one()
        assert (got.topic, got.payload) == ("room/1", b"from b")  # prefix stripped on the way out
        a_sub.expect_none(0.5)  # tenant a never sees tenant b's message
    finally:
        for c in clients:
            c.close()
