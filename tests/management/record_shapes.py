"""Record the shapes of a real RabbitMQ 3.10's management API answers.

    PLUGINS=rabbitmq_management ../shared/tools/start-rabbitmq.sh 5674
    python -m tests.management.record_shapes 5674

writes tests/management/fixtures/rabbitmq_3.10_shapes.json (keys, value types
and status codes only).  RabbitMQ's statistics lag by up to 5 s, hence the wait
before the calls.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from .shapes import clean_world, make_world, record

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "rabbitmq_3.10_shapes.json"
STATS_LAG = 6.0


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 5674
    amqp = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    clean_world(amqp)
    connection = make_world(amqp)
    try:
        time.sleep(STATS_LAG)
        shapes = record(f"http://127.0.0.1:{port + 10000}")
    finally:
        connection.close()
        clean_world(amqp)
    FIXTURE.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} ({len(shapes)} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
