"""Broker-side channel state: consumers, unacked deliveries, prefetch, confirms, tx.

The protocol layer (``protocol.connection``) decides whether a channel is open;
this object holds what a channel *owns* in the broker, and settles it when the
channel goes away (unacked messages requeued at their original positions with
redelivered=true, consumers cancelled).  What it sends goes to its connection's
:class:`~amqpbroker.broker.ports.Outbox`; a queue sees its consumers as
:class:`~amqpbroker.broker.ports.Consumer`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pamqp import commands

from .. import errors
from ..protocol import basic_codec, method_codec
from .message import Message, QueuedMessage
from .queue import Queue

if TYPE_CHECKING:
    from .ports import Outbox
    from .vhost import VirtualHost

_pack_delivery_tag = basic_codec.pack_delivery_tag


class Consumer:
    """One basic.consume on one channel, attached to one queue."""

    __slots__ = (
        "arguments",
        "channel",
        "deliver_exchange",
        "deliver_pair",
        "deliver_routing_key",
        "deliver_start",
        "exclusive",
        "no_ack",
        "prefetch",
        "priority",
        "queue",
        "tag",
        "unacked",
    )

    def __init__(
        self,
        channel: Channel,
        tag: str,
        queue: Queue,
        *,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
        priority: int = 0,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.channel = channel
        self.tag = tag
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch  # per-consumer limit (basic.qos global=false), 0 = none
        self.priority = priority
        self.arguments = arguments or {}
        self.unacked = 0
        # The constant parts of this consumer's basic.deliver frame for the route
        # of its last delivery (basic_codec.deliver_prefix): a queue's messages mostly
        # share one exchange and routing key.
        self.deliver_exchange: str | None = None
        self.deliver_routing_key: str | None = None
        self.deliver_start = b""
        self.deliver_pair = b""

    def can_take(self) -> bool:
        """Room for one more delivery: prefetch limits and the connection's buffer."""
        # Hot path (once per delivery): attribute reads only, no calls.
        channel = self.channel
        if self.no_ack:
            return channel.outbox.writable
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return channel.outbox.writable and (
            not channel.global_prefetch or channel.consumer_unacked < channel.global_prefetch
        )

    def deliver(self, queue: Queue, qm: QueuedMessage) -> None:
        self.channel.deliver(self, queue, qm)

    def queue_deleted(self) -> None:
        """Its queue is gone: the channel forgets it and tells the client."""
        self.channel.forget(self)

    def set_deliver_route(self, exchange: str, routing_key: str) -> None:
        self.deliver_start, self.deliver_pair = basic_codec.deliver_prefix(
            self.channel.number, self.tag, exchange, routing_key
        )
        self.deliver_exchange = exchange
        self.deliver_routing_key = routing_key


# One unacked delivery: the queue it came from, its queued message, its consumer
# (None for basic.get).
Unacked = tuple[Queue, QueuedMessage, Consumer | None]


class Channel:
    __slots__ = (
        "acked",
        "acked_upto",
        "closed",
        "commit_queued",
        "commit_seq",
        "confirm",
        "confirm_ready",
        "consumer_prefetch",
        "consumer_unacked",
        "consumers",
        "content_number",
        "global_prefetch",
        "last_queue",
        "next_tag",
        "number",
        "outbox",
        "publish_seq",
        "published",
        "refused",
        "tx",
        "unacked",
        "vhost",
        "write",
    )

    def __init__(self, outbox: Outbox, number: int, vhost: VirtualHost) -> None:
        self.outbox = outbox
        # outbox.write, bound once: Channel.deliver calls it once per delivery.
        self.write = outbox.write
        self.number = number
        self.vhost = vhost
        # Set by close(): a group commit that ends later has no confirms to send here.
        self.closed = False
        # The channel number whose received content frames (Message.content) a
        # delivery here may forward as they are; -1 for none (set by the session
        # when the connection's frame_max admits any body frame of that path).
        self.content_number = -1
        self.consumers: dict[str, Consumer] = {}
        # OrderedDict: popping from the front is O(1) (a dict's is not, after many
        # deletions), and multiple acks settle from the front.
        self.unacked: OrderedDict[int, Unacked] = OrderedDict()
        self.next_tag = 1
        # Metrics: messages published and acked on this channel (deliveries are
        # next_tag - 1).
        self.published = 0
        self.acked = 0
        self.consumer_prefetch = 0  # basic.qos global=false: for consumers created later
        self.global_prefetch = 0  # basic.qos global=true: shared by the channel
        # Unacked consumer deliveries: what global_prefetch limits.  basic.get
        # deliveries do not count against it (as in RabbitMQ's limiter).
        self.consumer_unacked = 0
        self.last_queue: str | None = None
        # Publisher confirms: sequence of the last publish, the highest sequence
        # that may be acked, and the highest already acked (or nacked) on the wire.
        self.confirm = False
        self.publish_seq = 0
        self.confirm_ready = 0
        self.acked_upto = 0
        # Confirms held for a group commit: the highest publish seq that waits for
        # one, and whether this channel is on the broker's list for the next commit.
        # While commit_seq > confirm_ready, later (transient) publishes wait too, so
        # that one multiple-ack never covers a message not yet on disk.
        self.commit_seq = 0
        self.commit_queued = False
        # Publishes a queue refused (reject-publish), to nack in their turn.
        self.refused: list[int] = []
        # Transactions: None when not in tx mode, else the pending operations.
        self.tx: list[Callable[[], None]] | None = None

    # -------------------------------------------------------------- delivery

    def deliver(
        self,
        consumer: Consumer,
        queue: Queue,
        qm: QueuedMessage | None,
        message: Message | None = None,
    ) -> None:
        """Deliver ``qm`` to ``consumer``; or, with ``qm`` None, ``message`` -- just
        published, not stored -- to a no-ack consumer (Queue.publish: nothing would
        keep a QueuedMessage made for it)."""
        tag = self.next_tag
        self.next_tag = tag + 1
        if qm is not None:
            message = qm.message
            redelivered = qm.redelivered
            if not consumer.no_ack:
                self.unacked[tag] = (queue, qm, consumer)
                consumer.unacked += 1
                self.consumer_unacked += 1
                queue.unacked += 1
            elif qm.persisted:
                queue.settled(qm)
        else:
            assert message is not None  # and consumer.no_ack: Queue.publish's rule
            redelivered = False
        content = message.content
        if content is not None and message.content_channel == self.content_number:
            # Hot path: the content frames go out as the publisher sent them, after
            # the consumer's cached method frame parts and this delivery's tag.
            if (
                message.routing_key != consumer.deliver_routing_key
                or message.exchange != consumer.deliver_exchange
            ):
                consumer.set_deliver_route(message.exchange, message.routing_key)
            data = b"".join(
                (
                    consumer.deliver_start,
                    _pack_delivery_tag(tag, redelivered),
                    consumer.deliver_pair,
                    content,
                )
            )
        else:
            data = basic_codec.encode_delivery(
                self.number,
                consumer.tag,
                tag,
                redelivered,
                message.exchange,
                message.routing_key,
                message.header,
                message.body,
                self.outbox.frame_max,
            )
        self.write(data)

    def deliver_get(self, queue: Queue, qm: QueuedMessage, no_ack: bool) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        if not no_ack:
            self.unacked[tag] = (queue, qm, None)
            queue.unacked += 1
        elif qm.persisted:
            queue.settled(qm)
        message = qm.message
        self.outbox.write_content(
            basic_codec.encode_get_ok(
                self.number,
                tag,
                qm.redelivered,
                message.exchange,
                message.routing_key,
                queue.message_count,
            ),
            self.number,
            message,
        )

    # ------------------------------------------------------------ settlement

    def _take(self, tag: int, multiple: bool) -> list[Unacked]:
        """Remove and return the deliveries a tag (and multiple flag) names.

        As RabbitMQ: tag 0 with multiple means everything; otherwise the tag itself
        must be outstanding, or the channel fails with 406 unknown delivery tag.
        """
        unacked = self.unacked
        if multiple and tag == 0:
            taken = list(unacked.values())
            unacked.clear()
            return taken
        if tag not in unacked:
            raise _unknown_tag(tag)
        if not multiple:
            return [unacked.pop(tag)]
        taken = []
        while unacked:
            first, entry = unacked.popitem(last=False)
            taken.append(entry)
            if first == tag:
                break
        return taken

    def _release(self, entries: Iterable[Unacked]) -> set[Queue]:
        """Bookkeeping for settled deliveries; returns the queues to re-dispatch."""
        touched: set[Queue] = set()
        for queue, _qm, consumer in entries:
            queue.unacked -= 1
            if consumer is not None:
                consumer.unacked -= 1
                self.consumer_unacked -= 1
            touched.add(queue)
        return touched

    def ack(self, tag: int, multiple: bool) -> None:
        unacked = self.unacked
        if not multiple:
            # Hot path: applications ack each message on its own (Celery, most client
            # libraries' defaults): what _take, _settle and _release do for one tag.
            entry = unacked.pop(tag, None)
            if entry is None:
                raise _unknown_tag(tag)
            queue, qm, consumer = entry
            if qm.persisted:
                queue.settled(qm)
            self._release_run(queue, consumer, 1)
            self._redispatch((queue,))
            return
        if not (tag and tag in unacked):
            taken = self._take(tag, multiple)
            self.acked += len(taken)
            self._settle(taken)
            self._redispatch(self._release(taken))
            return
        # Hot path: a consumer acking once per read settles hundreds of deliveries
        # with one multiple ack, mostly of one queue to one consumer.  One pass over
        # them; the counters move once per run of the same queue and consumer.
        popitem = unacked.popitem
        touched: set[Queue] = set()
        run_queue: Queue | None = None
        run_consumer: Consumer | None = None
        run = 0
        while True:
            first, (queue, qm, consumer) = popitem(False)
            if qm.persisted:
                queue.settled(qm)
            if queue is not run_queue or consumer is not run_consumer:
                if run_queue is not None:
                    self._release_run(run_queue, run_consumer, run)
                    touched.add(run_queue)
                run_queue, run_consumer, run = queue, consumer, 0
            run += 1
            if first == tag:
                break
        assert run_queue is not None
        self._release_run(run_queue, run_consumer, run)
        touched.add(run_queue)
        self._redispatch(touched)

    def _release_run(self, queue: Queue, consumer: Consumer | None, count: int) -> None:
        """``count`` acked deliveries of ``queue`` to ``consumer`` are settled."""
        queue.unacked -= count
        if consumer is not None:
            consumer.unacked -= count
            self.consumer_unacked -= count
        self.acked += count

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        taken = self._take(tag, multiple)
        touched = self._release(taken)
        if requeue:
            self._requeue(taken)
        else:
            for queue, qm, _consumer in taken:
                queue.rejected(qm)  # dead-lettered where the queue has a DLX
        self._redispatch(touched)

    @staticmethod
    def _settle(entries: list[Unacked]) -> None:
        """The messages are done with: forget them in the store."""
        for queue, qm, _consumer in entries:
            if qm.persisted:
                queue.settled(qm)

    def recover(self) -> None:
        """basic.recover(requeue=true): every unacked delivery goes back."""
        taken = list(self.unacked.values())
        self.unacked.clear()
        touched = self._release(taken)
        self._requeue(taken)
        self._redispatch(touched)

    @staticmethod
    def _requeue(entries: list[Unacked]) -> None:
        by_queue: dict[Queue, list[QueuedMessage]] = {}
        for queue, qm, _consumer in entries:
            by_queue.setdefault(queue, []).append(qm)
        for queue, messages in by_queue.items():
            queue.requeue(messages)

    def _redispatch(self, queues: Iterable[Queue]) -> None:
        for queue in queues:
            if queue.ready and queue.consumers:
                queue.dispatch()
        # A global prefetch limit frees room for every queue this channel consumes.
        if self.global_prefetch:
            for consumer in list(self.consumers.values()):
                if consumer.queue.ready:
                    consumer.queue.dispatch()

    def resume(self) -> None:
        """The connection drained its buffer: let queues deliver again."""
        for consumer in list(self.consumers.values()):
            queue = consumer.queue
            if queue.ready:
                queue.dispatch()

    # -------------------------------------------------------------- consumers

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers[consumer.tag] = consumer
        consumer.queue.add_consumer(consumer)

    def cancel(self, tag: str) -> Consumer | None:
        """Remove a consumer; auto-delete queues go when their last consumer does."""
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            return None
        queue = consumer.queue
        queue.remove_consumer(consumer)
        if queue.auto_delete and not queue.consumers and queue.had_consumer:
            self.vhost.remove_queue(queue)
        return consumer

    def forget(self, consumer: Consumer) -> None:
        """``consumer``'s queue was deleted: drop it, and tell a client that asked
        (consumer_cancel_notify) with a basic.cancel of its own."""
        if self.consumers.get(consumer.tag) is not consumer:
            return
        del self.consumers[consumer.tag]
        if self.outbox.wants("consumer_cancel_notify"):
            cancel = method_codec.make_method(
                commands.Basic.Cancel, consumer_tag=consumer.tag, nowait=True
            )
            self.outbox.send(method_codec.encode_method(self.number, cancel))

    def close(self) -> None:
        """The channel is gone: cancel consumers, requeue what was unacked."""
        for tag in list(self.consumers):
            self.cancel(tag)
        taken = list(self.unacked.values())
        self.unacked.clear()
        self._release(taken)
        self._requeue(taken)
        self.tx = None
        self.closed = True

    # --------------------------------------------------------------- confirms

    def committed(self, seq: int) -> None:
        """A group commit holding publishes up to ``seq`` is durable."""
        if seq > self.confirm_ready:
            self.confirm_ready = seq
        self.flush_confirms()

    def publish_refused(self, seq: int) -> None:
        """Publish ``seq`` gets basic.nack instead of an ack (a queue refused it).

        It is confirmed in its turn like any other (after a group commit it waits
        for, say): :meth:`flush_confirms` then sends the acks before it, the nack,
        and the acks after it, in order."""
        self.refused.append(seq)

    def flush_confirms(self) -> None:
        """One (multiple) ack for everything accepted since the last flush."""
        ready = self.confirm_ready
        if ready > self.acked_upto:
            if self.refused:
                self._flush_with_nacks(ready)
                return
            multiple = ready - self.acked_upto > 1
            self.outbox.send(basic_codec.encode_basic_ack(self.number, ready, multiple))
            self.acked_upto = ready

    def _flush_with_nacks(self, ready: int) -> None:
        refused = sorted(self.refused)
        for seq in refused:
            if seq > ready:
                break
            if seq - 1 > self.acked_upto:
                multiple = seq - 1 - self.acked_upto > 1
                self.outbox.send(basic_codec.encode_basic_ack(self.number, seq - 1, multiple))
            self.outbox.send(basic_codec.encode_basic_nack(self.number, seq, False))
            self.acked_upto = seq
        self.refused = [seq for seq in refused if seq > ready]
        if ready > self.acked_upto:
            multiple = ready - self.acked_upto > 1
            self.outbox.send(basic_codec.encode_basic_ack(self.number, ready, multiple))
            self.acked_upto = ready


__all__ = ["Channel", "Consumer", "Unacked"]


def _unknown_tag(tag: int) -> errors.PreconditionFailed:
    return errors.PreconditionFailed(f"unknown delivery tag {tag}")
