"""The scenarios of the side-by-side benchmark, with the targets of the performance issue.

Throughput is end to end: messages delivered to the consumer per second, from the
publisher's first send to the consumer's last delivery. Latency is publish-to-deliver: the
publisher writes CLOCK_MONOTONIC nanoseconds into the first 8 bytes of every body just
before ``sendall``; the consumer subtracts them from the time its ``recv`` returned.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Large bodies: at most this many body bytes per measurement, so a run stays bounded in
# memory and time even when the publisher outruns the consumer and the queue grows.
BODY_BYTES_BUDGET = 256 * 1024 * 1024
QUICK_FACTOR = 10  # --quick: a tenth of the messages
QUICK_LATENCY_S = 2.0
FANOUT_QUEUES = 10
APP_QUEUES = 4
APP_PREFETCH = 100
# The second client's passive-declare round trips while the first floods (issue 13).
FAIRNESS_P99_MS = 50.0
FAIRNESS_MAX_MS = 100.0


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    messages: int  # publishes in a full run (each is delivered ``queues`` times)
    body_size: int = 16
    acks: bool = False  # consumer acks (multiple, once per socket read), else no_ack
    confirms: bool = False  # publisher confirms, at most CONFIRM_WINDOW in flight
    persistent: bool = False  # durable queue, delivery_mode 2; our broker with a data dir
    queues: int = 1  # > 1: a fanout exchange bound to that many queues, one consumer each
    rate: float | None = None  # paced publishing (msg/s); None = as fast as possible
    prefetch: int = 1000
    target: float | None = None  # ratio ours / RabbitMQ to reach; None = report only
    latency_target: bool = False  # the target is on p99 latency (RabbitMQ p99 / our p99)
    distinct: bool = False  # each message its own message_id (else identical up to the body)
    # Application-shaped (benchmarks.appshape): Celery-like messages over a topic exchange,
    # routed by key to ``queues`` queues (each message to one of them).
    app: bool = False
    publishers: int = 1  # publisher processes, the messages split among them
    consumers: int = 1  # consumer processes, the queues dealt out among them
    ack_each: bool = False  # one ack per message (multiple=false) instead of one per read
    # One connection pipelines ``messages`` durable queue.declares while a second one times
    # its own passive declares (benchmarks.fairness); the latency is that round trip.
    fairness: bool = False

    @property
    def deliveries(self) -> int:
        # App-shaped messages go to one queue each (routed by key), not to every queue.
        return self.messages if self.app else self.messages * self.queues

    @property
    def target_text(self) -> str:
        if self.fairness:
            return f"p99 <= {FAIRNESS_P99_MS:.0f} ms, max <= {FAIRNESS_MAX_MS:.0f} ms"
        if self.target is None:
            return "report"
        return f">= {self.target:.1f}x" + (" (p99)" if self.latency_target else "")

    def sized(self, quick: bool, messages: int | None, latency_s: float | None) -> Scenario:
        """This scenario with the message count of the run asked for."""
        if self.fairness:
            count = messages or (self.messages // QUICK_FACTOR if quick else self.messages)
            return replace(self, messages=max(1, count))
        if self.rate:
            seconds = latency_s or (QUICK_LATENCY_S if quick else self.messages / self.rate)
            return replace(self, messages=max(1, round(seconds * self.rate)))
        count = messages or (self.messages // QUICK_FACTOR if quick else self.messages)
        count = min(count, max(1, BODY_BYTES_BUDGET // self.body_size))
        return replace(self, messages=max(1, count))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("transient", "transient, no acks", 200_000, target=2.0),
    Scenario("acks", "consumer acks, prefetch 1000", 200_000, acks=True, target=1.5),
    # The scenarios above publish one message repeated byte for byte up to the body (as
    # ampblast does), which the broker checks and routes once per burst; applications
    # mostly set a message_id per message, which these two measure.
    Scenario(
        "transient-ids",
        "transient, no acks, a message_id per message",
        200_000,
        distinct=True,
    ),
    Scenario(
        "acks-ids",
        "consumer acks, a message_id per message",
        200_000,
        acks=True,
        distinct=True,
    ),
    Scenario(
        "confirms",
        "publisher confirms + consumer acks",
        200_000,
        acks=True,
        confirms=True,
        target=1.5,
    ),
    Scenario(
        "persistent",
        "persistent, durable queue, confirms + acks (ours: --sync full)",
        50_000,
        acks=True,
        confirms=True,
        persistent=True,
        target=1.0,
    ),
    Scenario(
        "latency",
        "publish-to-deliver latency at 1,000 msg/s, consumer acks",
        10_000,
        acks=True,
        rate=1000.0,
        target=1.0,
        latency_target=True,
    ),
    Scenario(
        "fanout",
        f"fan-out: 1 publisher, {FANOUT_QUEUES} queues, {FANOUT_QUEUES} consumers, no acks",
        20_000,
        queues=FANOUT_QUEUES,
    ),
    Scenario("body-1k", "1 KiB bodies, no acks", 100_000, body_size=1024),
    Scenario(
        "body-64k",
        "64 KiB bodies, consumer acks",
        4_000,
        body_size=64 * 1024,
        acks=True,
        target=1.5,
    ),
    Scenario(
        "body-1m",
        "1 MiB bodies, consumer acks",
        256,
        body_size=1024 * 1024,
        acks=True,
        prefetch=50,
        target=1.5,
    ),
    # Traffic shaped like an application's (Celery 5 task messages), issue 13.
    Scenario(
        "app-transient",
        "app-shaped: 2 publishers (confirms), topic to 4 queues, 2 consumers acking each",
        200_000,
        confirms=True,
        acks=True,
        ack_each=True,
        prefetch=APP_PREFETCH,
        queues=APP_QUEUES,
        app=True,
        publishers=2,
        consumers=2,
        target=4.0,
    ),
    Scenario(
        "app-persistent",
        "app-shaped, durable queues, delivery mode 2 (ours: --sync full)",
        50_000,
        confirms=True,
        acks=True,
        ack_each=True,
        persistent=True,
        prefetch=APP_PREFETCH,
        queues=APP_QUEUES,
        app=True,
        publishers=2,
        consumers=2,
        target=3.0,
    ),
    Scenario(
        "fairness",
        "5,000 pipelined durable queue.declares vs another client's passive declares",
        5_000,
        persistent=True,
        fairness=True,
        latency_target=True,  # the ratio is RabbitMQ's p99 / ours, the target absolute
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def select(names: str | None) -> list[Scenario]:
    """Scenarios named in a comma-separated list (all when None), in the canonical order."""
    if not names:
        return list(SCENARIOS)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}"
        )
    return [scenario for scenario in SCENARIOS if scenario.name in wanted]
