#!/usr/bin/env bash
# Tools the test suite and the benchmarks run for real, from Debian's packages:
#   chromium  the staff portal's browser test (Playwright drives /usr/bin/chromium)
#   promtool  `promtool check metrics` on every process's exposition (package prometheus)
#   wrk       the gateway benchmark's load generator
#   a CJK font so the portal's and the reports' screenshots show Chinese, not boxes
# Installed once when missing; nothing else on the machine is touched.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing ${missing[*]} (Debian packages)"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
# Debian's prometheus package may start a server; the tests need only promtool.
pkill -x prometheus 2>/dev/null || true
