"""One consumer process for bench/framework_overhead.py: `nameko` (our reliable consumer in
a nameko service) or `bare` (a plain kombu consumer). Each does one store write per message
and acks; both stop when told (SIGTERM)."""

import sys

MODE, AMQP_URI, MONGO_URI, QUEUE, WORKERS = sys.argv[1:6]

if MODE == "nameko":
    import eventlet

    eventlet.monkey_patch()
    import signal

    from nameko.runners import ServiceRunner

    from shared import topology
    from shared.config import BaseConfig
    from shared.indexes import Index
    from shared.messaging import reliable_consumer
    from shared.store import Store

    topology.SUBSCRIPTIONS = topology.SUBSCRIPTIONS + (
        topology.Subscription("bench", QUEUE, ((topology.HOSPITAL_EXCHANGE, "bench.#"),)),
    )

    class BenchStore(Store):
        indexes = (Index("writes", ["seq"]),)

    class BenchService:
        name = "bench"
        store = BenchStore()

        @reliable_consumer(QUEUE)
        def handle(self, message):
            self.store.db.writes.insert_one({"seq": message.body["seq"]})

    config = BaseConfig().load(
        {
            "amqp_uri": AMQP_URI,
            "mongo_uri": MONGO_URI,
            "max_workers": int(WORKERS),
            "prefetch_count": int(WORKERS) * 2,
        }
    )
    config["process"] = "bench_nameko"
    runner = ServiceRunner({"AMQP_URI": AMQP_URI, "max_workers": int(WORKERS), "HCRM": config})
    runner.add_service(BenchService)
    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(runner.stop))
    runner.start()
    print("ready", flush=True)
    runner.wait()
else:
    import json
    import signal

    from kombu import Connection, Queue
    from kombu.mixins import ConsumerMixin

    from shared.store import connect

    db = connect(MONGO_URI, "bench_bare")
    db.writes.create_index("seq")

    class Bare(ConsumerMixin):
        def __init__(self, connection):
            self.connection = connection

        def get_consumers(self, consumer_cls, channel):
            consumer = consumer_cls(
                queues=[Queue(QUEUE, no_declare=True)], on_message=self.on_message
            )
            consumer.qos(prefetch_count=int(WORKERS) * 2)
            return [consumer]

        def on_message(self, message):
            db.writes.insert_one({"seq": json.loads(message.body)["seq"]})
            message.ack()

    with Connection(AMQP_URI) as connection:
        worker = Bare(connection)
        signal.signal(signal.SIGTERM, lambda *_: setattr(worker, "should_stop", True))
        print("ready", flush=True)
        worker.run()
