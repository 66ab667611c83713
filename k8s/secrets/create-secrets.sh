#!/bin/sh
# Creates the Secrets HCRM needs in a namespace, with random values, unless they exist.
# Never overwrites (rotate by hand, docs/DEPLOYMENT.md). Prints no secret.
#   k8s/secrets/create-secrets.sh hcrm-dev        # or: hcrm (prod)
# Needs kubectl (with access to the namespace) and openssl. The TLS secret hcrm-tls is not
# created here: cert-manager or `kubectl create secret tls` (see secrets.template.yaml).
set -eu
ns="${1:?usage: $0 NAMESPACE}"
rand() { openssl rand -hex "$1"; }

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"

create() {
  name="$1"; shift
  if kubectl -n "$ns" get secret "$name" >/dev/null 2>&1; then
    echo "secret $name exists: kept"
  else
    kubectl -n "$ns" create secret generic "$name" "$@" >/dev/null
    kubectl -n "$ns" label secret "$name" app.kubernetes.io/part-of=hcrm >/dev/null
    echo "secret $name created"
  fi
}

create hcrm-rabbitmq \
  --from-literal=username=hcrm \
  --from-literal=password="$(rand 24)" \
  --from-literal=erlang-cookie="$(rand 32)"
create hcrm-mongo-root \
  --from-literal=username=root \
  --from-literal=password="$(rand 24)"
create hcrm-mongo-keyfile \
  --from-literal=keyfile="$(openssl rand -base64 756 | tr -d '\n')"
create hcrm-mongo-users \
  --from-literal=intake="$(rand 24)" \
  --from-literal=followup="$(rand 24)" \
  --from-literal=appointments="$(rand 24)" \
  --from-literal=complaints="$(rand 24)" \
  --from-literal=analytics="$(rand 24)" \
  --from-literal=hl7="$(rand 24)" \
  --from-literal=campaigns="$(rand 24)" \
  --from-literal=gateway="$(rand 24)"
create hcrm-gateway \
  --from-literal=jwt-secret="$(rand 32)" \
  --from-literal=admin-username=admin \
  --from-literal=admin-password="$(rand 12)"

echo "bootstrap admin password: kubectl -n $ns get secret hcrm-gateway -o jsonpath='{.data.admin-password}' | base64 -d"
