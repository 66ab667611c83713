#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672: start it if installed and stopped, install
# Debian's rabbitmq-server if it is missing. Idempotent; used by `make up` and `make test`.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if port_open; then
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ is not installed: installing Debian's rabbitmq-server" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
fi
if ! port_open; then
  echo "starting RabbitMQ (rabbitmq-server -detached)" >&2
  rabbitmq-server -detached || true
fi
for _ in $(seq 1 120); do
  if port_open; then
    rabbitmqctl await_startup >/dev/null 2>&1 || true
    exit 0
  fi
  sleep 0.5
done
echo "RabbitMQ did not come up on 127.0.0.1:5672 within 60 s" >&2
exit 1
