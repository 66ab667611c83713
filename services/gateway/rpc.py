"""A pool of nameko RPC proxies, reused across requests (no AMQP connection per request).

A ClusterRpcProxy is not thread-safe, so each gunicorn thread borrows one; a proxy whose
connection broke is dropped and a fresh one is started on the next borrow.
"""
import contextlib
import queue
import threading

from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from shared import tracing


class ServiceUnavailable(Exception):
    def __init__(self, service, reason):
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class RpcPool:
    def __init__(self, amqp_uri, timeout_s, size):
        self.config = {"AMQP_URI": amqp_uri, "serializer": "json"}
        self.timeout_s = timeout_s
        self.size = size
        self._idle = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _new_proxy(self):
        proxy = ClusterRpcProxy(self.config, timeout=self.timeout_s)
        return proxy, proxy.start()

    @contextlib.contextmanager
    def _borrow(self):
        try:
            entry = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                can_create = self._created < self.size
                if can_create:
                    self._created += 1
            if can_create:
                try:
                    entry = self._new_proxy()
                except Exception:
                    with self._lock:
                        self._created -= 1
                    raise
            else:
                entry = self._idle.get(timeout=self.timeout_s)
        healthy = True
        try:
            yield entry[1]
        except (RemoteError, RpcTimeout, UnknownService):
            raise
        except Exception:
            healthy = False
            raise
        finally:
            if healthy:
                self._idle.put(entry)
            else:
                with self._lock:
                    self._created -= 1
                try:
                    entry[0].stop()
                except Exception:
                    pass

    def call(self, service, method, **kwargs):
        """Call `service.method(**kwargs)`. A service that is down or silent raises
        ServiceUnavailable within the RPC timeout; its own errors arrive as RemoteError."""
        try:
            with self._borrow() as proxy, tracing.client_span(f"rpc {service}.{method}"):
                # The request's trace goes along in nameko's context data (shared/tracing.py).
                tracing.into_context_data(proxy._worker_ctx.data)
                return getattr(getattr(proxy, service), method)(**kwargs)
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
                self._idle.get_nowait()[0].stop()
            except queue.Empty:
                return
