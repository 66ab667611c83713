"""Reliable messaging for nameko services: a consumer that never loses or loops, a confirmed
publisher, and the outbox relay.

nameko's own `@consume` acks and loses a message whose handler raises (or, with
requeue_on_error, redelivers it forever), and decodes bodies before the handler can see a
broken one. `reliable_consumer` replaces it with one rule for every service:

  handler returns              -> ack
  handler raises InvalidMessage -> publish the original bytes to the rejected queue with the
                                   reason in the headers, then ack (retrying cannot fix it)
  handler raises anything else  -> publish to the next retry queue (backoff), then ack; after
                                   the last delay, to the service's dead-letter queue
  that publish fails            -> requeue (the broker is the problem; nothing is acked)

Publishing happens before the ack, so a crash in between gives a duplicate, never a loss:
handlers are idempotent (docs/ARCHITECTURE.md rule 3).
"""

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, ClassVar

import amqp
import amqp.exceptions
import eventlet
from kombu import Connection, Exchange, Queue
from kombu import exceptions as kombu_errors
from kombu.message import Message
from kombu.pools import producers
from kombu.utils.url import maybe_sanitize_url
from nameko import rpc as nameko_rpc
from nameko.amqp.publish import UndeliverableMessage, get_producer
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_SERIALIZER,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from nameko.messaging import QueueConsumer

from shared import metrics, topology, tracing
from shared.clock import utcnow
from shared.errors import InvalidMessage
from shared.log import mask_text

log = logging.getLogger(__name__)

HEADER_PREFIX = "x-hcrm-"
ATTEMPT_HEADER = "x-hcrm-attempt"
ROUTING_KEY_HEADER = "x-hcrm-routing-key"
REASON_HEADER = "x-hcrm-reason"
ERRORS_HEADER = "x-hcrm-errors"
JSON = "application/json"

DEFAULT_EXCHANGE = Exchange("", type="direct", no_declare=True)
# What nameko hands a result handler when the worker raised: sys.exc_info()'s triple.
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def encode_json(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def publish(
    amqp_uri: str,
    exchange: str | Exchange,
    routing_key: str,
    body: object,
    headers: Mapping[str, Any] | None = None,
    content_type: str = JSON,
    content_encoding: str | None = "utf-8",
    message_id: str | None = None,
    expiration_s: float | None = None,
) -> None:
    """Publish one persistent message and wait for the broker's confirm.

    `mandatory` makes an unroutable message an error (UndeliverableMessage) instead of a
    confirmed drop. `body` is bytes or str (sent as they are: py-amqp hands consumers a
    str body when the message names a content_encoding) or a JSON-able value.
    Connections and channels come from kombu's per-URI pools: nothing is opened per call.
    `expiration_s`: the broker drops the message this long after it was queued (a per-message
    TTL: rejected and dead-lettered messages, README.md § Data protection).
    """
    if isinstance(body, str):
        body = body.encode(content_encoding or "utf-8")
    elif not isinstance(body, (bytes, bytearray)):
        body = encode_json(body)
    headers = tracing.headers(headers)  # the trace of the work that publishes (shared/tracing.py)
    if isinstance(exchange, str):
        exchange = (
            DEFAULT_EXCHANGE
            if exchange == ""
            else Exchange(exchange, type="topic", durable=True, no_declare=True)
        )
    for pause_s in (*NACK_RETRY_PAUSES_S, None):
        with get_producer(amqp_uri, confirms=True) as producer:
            try:
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    headers=headers or {},
                    content_type=content_type,
                    content_encoding=content_encoding,
                    delivery_mode=2,
                    mandatory=True,
                    message_id=message_id,
                    expiration=expiration_s,
                    retry=True,
                    retry_policy={
                        "max_retries": 3,
                        "interval_start": 0.2,
                        "interval_step": 0.5,
                        "interval_max": 2,
                    },
                )
                return
            except Exception as exc:
                if "NO_ROUTE" in str(exc):
                    raise UndeliverableMessage(
                        f"{exchange.name or '(default)'} / {routing_key}"
                    ) from exc
                if pause_s is None or not _nacked(exc):
                    raise
        time.sleep(pause_s)  # eventlet's sleep in a service (monkey-patched)


# A quorum queue whose leader's node just died nacks what is published to it until its
# followers have elected a new leader (tests/cluster measured 0.2-0.5 s on an idle machine).
# The message is not queued, so it is sent again, for up to ~8 s: without this a consumer
# whose retry publish is nacked requeues its message at once, in a loop that spends the
# message's delivery limit (topology.QUORUM_DELIVERY_LIMIT) within the election.
NACK_RETRY_PAUSES_S = (0.25, 0.5, 1.0, 1.0, 2.0, 3.0)


def _nacked(exc: BaseException) -> bool:
    return any(
        isinstance(e, amqp.exceptions.MessageNacked) for e in (exc, exc.__cause__, exc.__context__)
    )


class PublishFailed(Exception):
    """The broker did not confirm every message of a batch (nacked, unroutable, or gone)."""


class ConfirmedPublisher:
    """Publishes a batch of messages on one channel and waits once for the broker's confirms
    of all of them: one round trip per batch instead of one per message. The contract's
    guarantee is unchanged: nothing counts as published until the broker confirmed it, so a
    caller marks its outbox only after `publish_all` returned.

    One instance per sending thread (it owns a connection); after any error the connection
    is dropped and the next batch opens a new one.
    """

    def __init__(self, amqp_uri: str, confirm_timeout_s: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.confirm_timeout_s = confirm_timeout_s
        # kombu's Connection and py-amqp's channel while open (None: opened by the next batch)
        self._connection: Any = None
        self._channel: Any = None
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._failures: list[str] = []

    def _open(self) -> Any:
        if self._channel is not None:
            return self._channel
        connection = Connection(self.amqp_uri, connect_timeout=5)
        connection.connect()
        channel = connection.connection.channel()  # py-amqp's channel: its confirm events
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._connection, self._channel, self._next_tag = connection, channel, 1
        return channel

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._failures.append(f"nacked (delivery tag {tag})")
        self._settle(tag, multiple)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._failures.append(f"unroutable: {exchange or '(default)'} / {routing_key}")

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # already broken: nothing to release
                pass

    def publish_all(self, messages: Sequence[tuple[Any, ...]]) -> None:
        """messages: [(exchange, routing_key, body, message_id[, headers])], bodies JSON-able
        (headers: the outbox's traceparent of each; else the current trace's). Returns
        when the broker confirmed all; raises PublishFailed (or the connection's error)
        otherwise, and then some may have been published: the caller publishes again
        later, and consumers deduplicate on event_id."""
        if not messages:
            return
        try:
            channel = self._open()
            self._failures = []
            for exchange, routing_key, body, message_id, *rest in messages:
                channel.basic_publish(
                    amqp.Message(
                        encode_json(body),
                        content_type=JSON,
                        content_encoding="utf-8",
                        delivery_mode=2,
                        message_id=message_id,
                        application_headers=tracing.headers(rest[0] if rest else None),
                    ),
                    exchange=exchange,
                    routing_key=routing_key,
                    mandatory=True,
                )
                self._unconfirmed.add(self._next_tag)
                self._next_tag += 1
            deadline = time.monotonic() + self.confirm_timeout_s
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishFailed(
                        f"{len(self._unconfirmed)} message(s) not confirmed "
                        f"within {self.confirm_timeout_s} s"
                    )
                self._connection.connection.drain_events(timeout=remaining)
            if self._failures:
                raise PublishFailed("; ".join(self._failures[:5]))
        except Exception:
            self._unconfirmed.clear()
            self.close()
            raise


@dataclasses.dataclass
class InboundMessage:
    """What a reliable consumer hands to its handler."""

    body: object  # the decoded JSON value
    routing_key: str | None  # the original routing key, also after retries
    headers: dict[str, Any]
    attempt: int  # 0 for the first delivery, then 1, 2, ... for retries
    # What a batch consumer's `check` made of the body as it arrived (None otherwise): the
    # handler takes it instead of validating the body a second time.
    checked: Any = None


# A delivery waiting in a batch: (message, routing_key, attempt, what the handler gets).
Delivery = tuple[Message, str | None, int, InboundMessage]


def copy_id(source_queue: str, body: bytes | str) -> str:
    """The message id of a set-aside copy (rejected or dead-lettered): the same for every
    copy of one body from one queue. The copy is published, confirmed, then the original
    acked; a process killed between the two leaves the original to be delivered again, and
    set aside again: a second, identical copy under the same id, which `hcrm dlq` counts and
    replays once. No broker operation publishes one message and acks another atomically
    (RabbitMQ has no deduplication), so the reader is where a repeat is recognised."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return hashlib.sha256(source_queue.encode("utf-8") + b"\0" + raw).hexdigest()[:32]


def safe_uri(amqp_uri: str) -> str:
    """The URI with every password masked. A cluster's node list is several URIs joined with
    ';' (kombu's failover alternates), and kombu and nameko mask the first one only."""
    return ";".join(maybe_sanitize_url(uri) for uri in amqp_uri.split(";"))


class SafeQueueConsumer(QueueConsumer):
    """nameko's queue consumer, logging its broker's address with no password in it."""

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        log.warning(
            "error connecting to the broker; retrying",
            extra={
                "broker": safe_uri(self.amqp_uri),
                "reason": str(exc)[:500],
                "retry_in_s": interval,
            },
        )


class RawQueueConsumer(SafeQueueConsumer):
    """nameko's shared queue consumer, but handing providers the undecoded kombu message,
    so that a body that is not JSON reaches our rejection rule instead of crashing kombu."""

    @property
    def prefetch_count(self) -> int:
        return max(self.container.max_workers, self.container.config["HCRM"]["prefetch_count"])

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Iterable[Any]:
        for provider in self._providers:
            consumer = consumer_cls(
                queues=[provider.queue], on_message=partial(self.handle_raw_message, provider)
            )
            consumer.qos(
                prefetch_count=max(self.prefetch_count, getattr(provider, "prefetch_count", 0))
            )
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_raw_message(self, provider: Any, message: Message) -> None:
        self.container.spawn_managed_thread(
            partial(provider.handle_message, message),
            identifier=f"{type(provider).__name__}.handle_message",
        )


class ReliableConsumer(Entrypoint):
    queue_consumer = RawQueueConsumer()
    span_kind = tracing.CONSUMER

    def __init__(self, queue_name: str, **kwargs: Any) -> None:
        self.queue_name = queue_name
        kwargs.setdefault("expected_exceptions", (InvalidMessage,))
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.config = self.container.config["HCRM"]
        self.service = self.container.service_name
        self.subscription = next(s for s in topology.SUBSCRIPTIONS if s.queue == self.queue_name)
        self.queue = topology.consumer_queue(self.subscription, self.config["queue_type"])
        self.delays = list(self.config["retry_delays_ms"])
        self.queue_consumer.register_provider(self)

    def stop(self) -> None:
        self.queue_consumer.unregister_provider(self)

    # -- receiving ------------------------------------------------------------------------
    def _decode(self, message: Message) -> tuple[str | None, int, InboundMessage] | None:
        """(routing_key, attempt, InboundMessage), or None when the body is not JSON (then
        the message is settled already: rejected)."""
        headers = dict(message.headers or {})
        routing_key = headers.get(ROUTING_KEY_HEADER) or message.delivery_info.get("routing_key")
        attempt = int(headers.get(ATTEMPT_HEADER) or 0)
        try:
            body = json.loads(message.body)
        except (ValueError, UnicodeDecodeError) as exc:
            metrics.EVENTS_IN.labels(self.service, self.queue_name, "(not json)").inc()
            self._settle(
                message,
                routing_key,
                attempt,
                InvalidMessage(
                    {"_body": [f"Not valid JSON: {exc.__class__.__name__} {str(exc)[:200]}"]}
                ),
            )
            return None
        event_type = body.get("event_type") if isinstance(body, dict) else None
        metrics.EVENTS_IN.labels(self.service, self.queue_name, str(event_type)[:64]).inc()
        return routing_key, attempt, InboundMessage(body, routing_key, headers, attempt)

    @staticmethod
    def _context(inbound: InboundMessage) -> dict[str, Any]:
        """The worker's context data: the event id, and the sender's traceparent (the worker
        continues that trace, shared/tracing.py)."""
        body = inbound.body
        context = tracing.context_from_headers(inbound.headers)
        if isinstance(body, dict):
            context["correlation_id"] = str(body.get("event_id"))[:128]
        return context

    def handle_message(self, message: Message) -> None:
        started = time.perf_counter()
        decoded = self._decode(message)
        if decoded is None:
            return
        routing_key, attempt, inbound = decoded
        try:
            self.container.spawn_worker(
                self,
                (inbound,),
                {},
                context_data=self._context(inbound),
                handle_result=partial(self.handle_result, message, routing_key, attempt, started),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(
        self,
        message: Message,
        routing_key: str | None,
        attempt: int,
        started: float,
        worker_ctx: Any,
        result: Any = None,
        exc_info: ExcInfo | None = None,
    ) -> tuple[Any, ExcInfo | None]:
        elapsed = time.perf_counter() - started
        metrics.HANDLER_SECONDS.labels(self.service, self.queue_name).observe(elapsed)
        self._log_handled(worker_ctx.args[0], elapsed, exc_info)
        self._settle(message, routing_key, attempt, exc_info[1] if exc_info else None)
        return result, exc_info

    def _log_handled(
        self, inbound: InboundMessage, elapsed: float, exc_info: ExcInfo | None, **extra: Any
    ) -> None:
        """One line per message handled, with its trace id (from the worker's span, or
        `extra`): `hcrm trace` follows an event through the services by these lines."""
        body = inbound.body if isinstance(inbound.body, dict) else {}
        log.info(
            "message handled",
            extra={
                "queue": self.queue_name,
                "event_type": str(body.get("event_type"))[:64],
                "event_id": str(body.get("event_id"))[:128],
                "ms": round(elapsed * 1000, 1),
                "outcome": exc_info[0].__name__ if exc_info else "ok",
                **({"attempt": inbound.attempt} if inbound.attempt else {}),
                **extra,
            },
        )

    # -- settling -------------------------------------------------------------------------
    def _settle(
        self, message: Message, routing_key: str | None, attempt: int, error: BaseException | None
    ) -> None:
        try:
            if error is None:
                pass
            elif isinstance(error, InvalidMessage):
                self._reject(message, routing_key, error)
            else:
                self._retry_or_dead_letter(message, routing_key, attempt, error)
        except Exception:
            # The broker refused our publish: leave the message to the broker, not the void.
            log.exception(
                "could not settle a failed message; requeueing it", extra={"queue": self.queue_name}
            )
            self._safely(self.queue_consumer.requeue_message, message)
            return
        self._safely(self.queue_consumer.ack_message, message)

    def _safely(self, settle: Callable[[Message], object], message: Message) -> None:
        """Ack or requeue; if the connection died meanwhile the broker redelivers the message
        (it was never acked), so the error is logged, not raised: a raise here would kill
        the whole service container."""
        try:
            settle(message)
        except Exception as exc:
            log.warning(
                "could not ack/requeue; the broker will redeliver",
                extra={"queue": self.queue_name, "reason": f"{exc.__class__.__name__}: {exc}"},
            )

    def _forward(
        self, message: Message, queue: str, headers: dict[str, Any], set_aside: bool = False
    ) -> None:
        """`set_aside`: to the rejected queue or a DLQ, where the message expires after
        rejected_retention_days (it carries a whole event, personal data included), under
        its copy id (copy_id)."""
        expiration = self.config["rejected_retention_days"] * 86400 if set_aside else None
        publish(
            self.config["amqp_uri"],
            "",
            queue,
            message.body,
            headers=headers,
            content_type=message.content_type or JSON,
            content_encoding=message.content_encoding or "utf-8",
            message_id=copy_id(self.queue_name, message.body) if set_aside else None,
            expiration_s=expiration,
        )

    def _reject(self, message: Message, routing_key: str | None, error: InvalidMessage) -> None:
        reject_queue = self.subscription.reject_queue or topology.dead_letter_queue(self.service)
        headers = {
            k: v for k, v in (message.headers or {}).items() if not k.startswith(HEADER_PREFIX)
        }
        headers.update(
            {
                REASON_HEADER: mask_text(str(error))[:2000],
                ERRORS_HEADER: json.dumps(error.errors, ensure_ascii=False)[:4000],
                ROUTING_KEY_HEADER: routing_key or "",
                "x-hcrm-rejected-by": self.service,
                "x-hcrm-rejected-at": utcnow().isoformat(),
                "x-hcrm-source-queue": self.queue_name,
            }
        )
        self._forward(message, reject_queue, headers, set_aside=True)
        metrics.EVENTS_REJECTED.labels(self.service, self.queue_name).inc()
        log.warning(
            "message rejected",
            extra={
                "queue": self.queue_name,
                "reason": str(error)[:500],
                "routing_key": routing_key,
            },
        )

    def _retry_or_dead_letter(
        self, message: Message, routing_key: str | None, attempt: int, error: BaseException
    ) -> None:
        reason = mask_text(f"{error.__class__.__name__}: {error}")[:2000]
        metrics.EVENTS_FAILED.labels(self.service, self.queue_name, error.__class__.__name__).inc()
        headers = dict(message.headers or {})
        headers.update(
            {
                ROUTING_KEY_HEADER: routing_key or "",
                REASON_HEADER: reason,
                ATTEMPT_HEADER: attempt + 1,
            }
        )
        if attempt < len(self.delays):
            delay = self.delays[attempt]
            self._forward(message, topology.retry_queue(self.queue_name, delay), headers)
            metrics.EVENTS_RETRIED.labels(self.service, self.queue_name).inc()
            log.warning(
                "handler failed; retrying later",
                extra={
                    "queue": self.queue_name,
                    "attempt": attempt + 1,
                    "delay_ms": delay,
                    "reason": reason,
                },
            )
        else:
            headers.update(
                {
                    "x-hcrm-dead-lettered-at": utcnow().isoformat(),
                    "x-hcrm-source-queue": self.queue_name,
                }
            )
            self._forward(
                message, topology.dead_letter_queue(self.service), headers, set_aside=True
            )
            metrics.EVENTS_DEAD_LETTERED.labels(self.service, self.queue_name).inc()
            log.error(
                "handler failed after every retry; dead-lettered",
                extra={"queue": self.queue_name, "attempts": attempt + 1, "reason": reason},
            )


class BatchReliableConsumer(ReliableConsumer):
    """A reliable consumer whose handler takes a list of InboundMessage: the deliveries that
    arrived together (up to `max_batch`), so the handler can write them in bulk, one store
    round trip for many events (bench/README.md).

    The rule per message stays the one above. `check(inbound)` is the handler's own
    validation of one message, a pure function: it runs as each message arrives, so a message
    it refuses (InvalidMessage) is rejected alone at once and never joins a batch; what it
    returns reaches the handler as `inbound.checked`. A batch whose handler returns is acked
    as a whole; if it raises, each of its messages is handled again alone, so a message that
    fails for another reason is retried by itself and costs the others nothing (handlers are
    idempotent).
    """

    def __init__(
        self,
        queue_name: str,
        max_batch: int = 100,
        linger_s: float = 0.0,
        check: Callable[[InboundMessage], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.max_batch = max_batch
        self.check = check
        # How long a batch waits for more deliveries before it is handled: 0 takes what
        # arrived together; a consumer no one waits on (analytics) lingers, so that at a low
        # rate it still writes in bulk instead of paying a batch's cost for every event.
        self.linger_s = linger_s
        super().__init__(queue_name, **kwargs)

    def setup(self) -> None:
        super().setup()
        self._buffer: list[Delivery] = []
        self._flush_scheduled = False

    @property
    def prefetch_count(self) -> int:
        # Room for the next batch to gather while one is handled.
        return max(2 * self.max_batch, self.config["prefetch_count"])

    def handle_message(self, message: Message) -> None:
        decoded = self._decode(message)
        if decoded is None:
            return
        routing_key, attempt, inbound = decoded
        if self.check is not None:
            # Refused before it joins a batch: a poison message costs no batch a failed try
            # and its neighbours no second handling (once with the batch, once alone).
            try:
                inbound.checked = self.check(inbound)
            except InvalidMessage as error:
                self._log_handled(inbound, 0.0, (type(error), error, error.__traceback__))
                self._settle(message, routing_key, attempt, error)
                return
            except Exception:  # a fault of the check itself: the handler's turn to meet it
                log.exception("a batch check failed", extra={"queue": self.queue_name})
        self._buffer.append((message, *decoded))
        if len(self._buffer) >= self.max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.container.spawn_managed_thread(
                self._flush_soon, identifier="BatchReliableConsumer.flush"
            )

    def _flush_soon(self) -> None:
        # At least one turn of the hub: the deliveries already read from the socket join.
        eventlet.sleep(self.linger_s)
        self._flush()

    def _flush(self) -> None:
        batch, self._buffer, self._flush_scheduled = self._buffer, [], False
        if batch:
            self._spawn(batch)

    @staticmethod
    def batch_traceparents(args: Sequence[Any]) -> list[tuple[str, str | None]]:
        """[(event_id, traceparent)] of a batch worker's messages: WorkerTracing gives each
        its own span."""
        return [
            (
                str(inbound.body.get("event_id")) if isinstance(inbound.body, dict) else "",
                inbound.headers.get(tracing.TRACEPARENT),
            )
            for inbound in args[0]
        ]

    def _spawn(self, batch: list[Delivery]) -> None:
        started = time.perf_counter()
        try:
            self.container.spawn_worker(
                self,
                ([inbound for _, _, _, inbound in batch],),
                {},
                context_data=self._context(batch[0][3]) if len(batch) == 1 else {},
                handle_result=partial(self.handle_batch_result, batch, started),
            )
        except ContainerBeingKilled:
            for message, *_ in batch:
                self.queue_consumer.requeue_message(message)

    def handle_batch_result(
        self,
        batch: list[Delivery],
        started: float,
        worker_ctx: Any,
        result: Any = None,
        exc_info: ExcInfo | None = None,
    ) -> tuple[Any, ExcInfo | None]:
        elapsed = time.perf_counter() - started
        for _ in batch:  # the batch's time shared out: the histogram stays per message
            metrics.HANDLER_SECONDS.labels(self.service, self.queue_name).observe(
                elapsed / len(batch)
            )
        for *_, inbound in batch:
            extra: dict[str, Any] = {}
            if len(batch) > 1:  # the line names its message's trace, not the batch's many
                body = inbound.body if isinstance(inbound.body, dict) else {}
                extra["batch"] = len(batch)
                trace_id = tracing.trace_id_for(body.get("event_id"))
                if trace_id:
                    extra["trace_id"] = trace_id
            self._log_handled(inbound, elapsed, exc_info, **extra)
        if exc_info is None or len(batch) == 1:
            for message, routing_key, attempt, _ in batch:
                self._settle(message, routing_key, attempt, exc_info[1] if exc_info else None)
        else:
            log.info(
                "a batch failed; handling its messages one by one",
                extra={
                    "queue": self.queue_name,
                    "messages": len(batch),
                    "reason": mask_text(f"{exc_info[0].__name__}: {exc_info[1]}")[:500],
                },
            )
            for item in batch:
                self._spawn([item])
        return result, exc_info


class RpcConsumer(nameko_rpc.RpcConsumer):
    """nameko's RPC consumer with its `rpc-<service>` queue of the installation's type
    (topology.rpc_queue_arguments). nameko declares a classic queue, which on a cluster lives
    on one node: while that node is down the service cannot redeclare it and answers no RPC.
    Classic installations get exactly nameko's queue."""

    queue_consumer = SafeQueueConsumer()
    queue: Queue | None  # None until set up: then this installation's queue, or nameko's own

    def setup(self) -> None:
        if self.queue is None:
            queue_type = self.container.config.get("HCRM", {}).get("queue_type", "classic")
            arguments = topology.rpc_queue_arguments(queue_type)
            if arguments:
                service = self.container.service_name
                self.queue = Queue(
                    nameko_rpc.RPC_QUEUE_TEMPLATE.format(service),
                    exchange=nameko_rpc.get_rpc_exchange(self.container.config),
                    routing_key=f"{service}.*",
                    durable=True,
                    queue_arguments=arguments,
                )
                self.queue_consumer.register_provider(self)
                self._registered = True
        super().setup()

    def handle_result(
        self, message: Message, result: Any, exc_info: ExcInfo | None
    ) -> tuple[Any, ExcInfo | None]:
        """Send the reply; if the broker is gone meanwhile, log it instead of raising. nameko
        lets that error kill the whole service container (a broker restart during a call
        took followup down in the chaos suite); the caller times out and may call again,
        and the unacked request is redelivered, both of which our handlers tolerate."""
        try:
            return self._reply(message, result, exc_info)
        except (OSError, amqp.exceptions.AMQPError, kombu_errors.OperationalError) as exc:
            log.warning(
                "could not send an RPC reply; the caller will time out",
                extra={"reason": f"{exc.__class__.__name__}: {exc}"[:300]},
            )
            return result, exc_info

    def _reply(
        self, message: Message, result: Any, exc_info: ExcInfo | None
    ) -> tuple[Any, ExcInfo | None]:
        """nameko's handle_result, the reply sent by _ReplyPublisher (below)."""
        config = self.container.config
        responder = _UnconfirmedResponder(
            config[AMQP_URI_CONFIG_KEY],
            nameko_rpc.get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class _ReplyPublisher:
    """Publishes an RPC reply as nameko's Publisher did (kombu's producer pool, its retry
    policy), with two costs of each reply removed (bench/RESULTS.md, issue 17):
    - no broker confirm: the caller waiting for the reply is its confirmation, and a reply
      the broker lost is the caller's RPC timeout, as a lost request is;
    - one kombu Connection object per broker address and process, where nameko's made one
      per message (0.1-0.2 ms of CPU each, as much as the rest of the reply)."""

    _connections: ClassVar[dict[tuple[str, str, str | None], Connection]] = {}  # per process

    def __init__(self, amqp_uri: str, ssl: Any = None, login_method: str | None = None) -> None:
        key = (amqp_uri, repr(ssl), login_method)
        connection = self._connections.get(key)
        if connection is None:
            options = dict(DEFAULT_TRANSPORT_OPTIONS, confirm_publish=False)
            connection = self._connections.setdefault(
                key,
                Connection(amqp_uri, transport_options=options, ssl=ssl, login_method=login_method),
            )
        self.connection = connection

    def publish(self, payload: Any, **kwargs: Any) -> None:
        with producers[self.connection].acquire(block=True) as producer:
            producer.publish(payload, retry=True, retry_policy=DEFAULT_RETRY_POLICY, **kwargs)


class _UnconfirmedResponder(nameko_rpc.Responder):
    publisher_cls = _ReplyPublisher


class Rpc(nameko_rpc.Rpc):
    rpc_consumer = RpcConsumer()


reliable_consumer = ReliableConsumer.decorator
reliable_batch_consumer = BatchReliableConsumer.decorator
# Every service's RPC methods use this one (all of a service's methods share one consumer of
# one queue: mixing it with nameko's own `rpc` would declare that queue twice, differently).
rpc = Rpc.decorator
