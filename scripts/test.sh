#!/usr/bin/env bash
# Installs what the test suite needs and runs all of it: lint, types, tests.
# Servers the integration tests use are started by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/pytest "$@"
