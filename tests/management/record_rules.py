"""Record who may call which management route on a real RabbitMQ 3.10.

    PLUGINS=rabbitmq_management ../shared/tools/start-rabbitmq.sh 5760 /tmp/rmq
    python -m tests.management.record_rules 5760

writes tests/management/fixtures/rabbitmq_3.10_route_rules.json (see routewalk.py).
"""

from __future__ import annotations

import json
import pathlib
import sys

from .routewalk import walk

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "rabbitmq_3.10_route_rules.json"


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 5674
    table = walk(f"http://127.0.0.1:{port + 10000}", port)
    # One line per call: a reviewer reads the table as it is.
    lines = [f" {json.dumps(key)}: {json.dumps(table[key])}" for key in sorted(table)]
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {FIXTURE} ({len(table)} calls x {len(next(iter(table.values())))} users)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
