"""RPC to the nameko services: a pool of clients, reused across requests (no AMQP connection
per request).

A client speaks nameko's RPC protocol (a request on the `nameko-rpc` exchange, the reply on
the client's own queue, matched by correlation id) on one connection, without nameko's
standalone proxy: that one waited for a publisher confirm of every request, a round trip to
the broker that proves nothing the reply does not (a request the broker lost surfaces as the
RPC timeout, as a lost reply does), and made a kombu connection object per call. A request to
a service that never declared its queue is still refused at once: it is published
`mandatory`, and the broker's return arrives before any reply could.

A client is used by one gunicorn thread at a time; one whose connection broke, or that timed
out (a reply may still be on its way), is dropped, and a fresh one starts on the next borrow.
"""

import contextlib
import queue
import threading
import time
import uuid

from kombu import Connection, Consumer, Producer, Queue
from kombu.exceptions import OperationalError
from nameko.constants import NON_PERSISTENT
from nameko.exceptions import RpcTimeout, UnknownService, deserialize
from nameko.rpc import RPC_REPLY_QUEUE_TEMPLATE, get_rpc_exchange

from shared import tracing


class _Answered(Exception):
    """Wraps what the service raised, so the pool tells it from a broken connection."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


class RpcClient:
    """One AMQP connection, its reply queue and a producer; not thread-safe."""

    def __init__(self, amqp_uri, timeout_s):
        self.timeout_s = timeout_s
        self.connection = Connection(amqp_uri)  # a ';' list of nodes fails over, as before
        channel = self.connection.channel()
        exchange = get_rpc_exchange({})
        self.reply_to = str(uuid.uuid4())
        # Exclusive: the queue goes with the connection (a dropped client leaves nothing).
        reply_queue = Queue(
            RPC_REPLY_QUEUE_TEMPLATE.format("gateway", self.reply_to),
            exchange=exchange,
            routing_key=self.reply_to,
            exclusive=True,
        )
        self.consumer = Consumer(
            channel, queues=[reply_queue], no_ack=True, accept=["json"], callbacks=[self._on_reply]
        )
        self.consumer.consume()
        self.producer = Producer(
            channel,
            exchange=exchange,
            serializer="json",
            auto_declare=False,
            on_return=self._on_return,
        )
        # What nameko's proxy sent as its call stack (services log their parent calls by it).
        self.call_id_stack = [f"standalone_rpc_proxy.call.{uuid.uuid4().hex}"]
        self._waiting_for = None
        self._reply = None
        self._returned = False

    def _on_reply(self, body, message):
        if message.properties.get("correlation_id") == self._waiting_for:
            self._reply = body

    def _on_return(self, exception, exchange, routing_key, message):
        if message.properties.get("correlation_id") == self._waiting_for:
            self._returned = True

    def call(self, service, method, kwargs, context_data):
        correlation_id = str(uuid.uuid4())
        self._waiting_for, self._reply, self._returned = correlation_id, None, False
        headers = {
            f"nameko.{key}": value for key, value in context_data.items() if value is not None
        }
        headers["nameko.call_id_stack"] = self.call_id_stack
        # Transient and unconfirmed: a request lost with the broker is a timeout, like a lost
        # reply, and the caller answers 503 for both.
        self.producer.publish(
            {"args": [], "kwargs": kwargs},
            routing_key=f"{service}.{method}",
            mandatory=True,
            reply_to=self.reply_to,
            correlation_id=correlation_id,
            headers=headers,
            delivery_mode=NON_PERSISTENT,
            retry=False,
        )
        deadline = time.monotonic() + self.timeout_s
        while self._reply is None:
            if self._returned:  # no queue is bound for it: the service never started
                raise UnknownService(service)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcTimeout(self.timeout_s)
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:  # the socket's: no frame within the time left
                raise RpcTimeout(self.timeout_s) from None
        reply, self._reply, self._waiting_for = self._reply, None, None
        if reply.get("error"):
            raise _Answered(deserialize(reply["error"]))
        return reply["result"]

    def close(self):
        self.connection.release()


class ServiceUnavailable(Exception):
    def __init__(self, service, reason):
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class RpcPool:
    def __init__(self, amqp_uri, timeout_s, size):
        self.amqp_uri = amqp_uri
        self.timeout_s = timeout_s
        self.size = size
        self._idle = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _new_client(self):
        return RpcClient(self.amqp_uri, self.timeout_s)

    @contextlib.contextmanager
    def _borrow(self):
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                can_create = self._created < self.size
                if can_create:
                    self._created += 1
            if can_create:
                try:
                    client = self._new_client()
                except Exception:
                    with self._lock:
                        self._created -= 1
                    raise
            else:
                client = self._idle.get(timeout=self.timeout_s)
        healthy = True
        try:
            yield client
        except (_Answered, UnknownService):  # the connection is fine
            raise
        except Exception:  # a broken connection, or a timeout (its reply may still come)
            healthy = False
            raise
        finally:
            if healthy:
                self._idle.put(client)
            else:
                with self._lock:
                    self._created -= 1
                try:
                    client.close()
                except Exception:
                    pass

    def call(self, service, method, **kwargs):
        """Call `service.method(**kwargs)`. A service that is down or silent raises
        ServiceUnavailable within the RPC timeout; its own errors arrive as RemoteError."""
        try:
            with self._borrow() as client, tracing.client_span(f"rpc {service}.{method}"):
                # The request's trace goes along in nameko's context data (shared/tracing.py).
                context_data = {}
                tracing.into_context_data(context_data)
                return client.call(service, method, kwargs, context_data)
        except _Answered as answered:  # NotFound, BadRequest, Conflict or a RemoteError
            raise answered.error from None
        except RpcTimeout:
            raise ServiceUnavailable(service, f"no answer within {self.timeout_s:g}s") from None
        except UnknownService:
            raise ServiceUnavailable(service, "not running (no RPC queue)") from None
        except queue.Empty:
            raise ServiceUnavailable(service, "all RPC proxies busy") from None
        except (OSError, ConnectionError, OperationalError) as exc:
            raise ServiceUnavailable(service, f"broker unreachable: {exc}") from None

    def close(self):
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
