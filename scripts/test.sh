#!/usr/bin/env bash
# Installs what the test suite needs and runs all of it: lint, types, tests.
# Servers the integration tests use are started by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL's server, for the tests that run the flows on it (they start their own).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # Install without starting Debian's own cluster: the tests start a throwaway one.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=yes
  fi
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/pytest "$@"
