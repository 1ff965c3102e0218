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

# OpenLDAP's slapd and Samba's AD domain controller, for the directory tests (they
# start their own, on 127.0.0.1). Preseeded so that Debian configures no directory
# of its own, and installed without starting any system service.
need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
[ -x /usr/sbin/samba ] || need+=(samba samba-ad-dc winbind)
command -v kinit >/dev/null 2>&1 || need+=(krb5-user)
if [ ${#need[@]} -gt 0 ]; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=yes
  fi
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# OpenSSH's sshd, for the SFTP pickup tests (they start their own on 127.0.0.1);
# installed without starting Debian's own service.
if [ ! -x /usr/sbin/sshd ]; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=yes
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'

# Node.js and Learning Locker's xAPI validator, which the statement tests run over
# every statement they build; the package goes to a git-ignored node_modules.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd tests/statements/node && npm ci --silent --no-audit --no-fund)

# 1EdTech's Open Badges 3.0 JSON schema, which every credential the tests build must
# pass. Its licence does not let us redistribute it, so it is taken from a PyPI
# package that ships it (openbadgeslib's source distribution), checked by its hash,
# and kept out of git.
ob_schema=tests/statements/schemas/ob_v3p0_achievementcredential_schema.json
ob_sha256=b7358e895f492e74055dc6bfc7ffc420d0e497f90c4579fb83d9519b86d393ea
if ! echo "$ob_sha256  $ob_schema" | sha256sum --check --status 2>/dev/null; then
  ob_tmp=$(mktemp -d)
  .venv/bin/pip download --quiet --no-deps --no-binary :all: -d "$ob_tmp" \
    openbadgeslib==4.6.3
  tar -xzf "$ob_tmp"/openbadgeslib-4.6.3.tar.gz -C "$ob_tmp" \
    "openbadgeslib-4.6.3/tests/fixtures/ob_schemas/$(basename "$ob_schema")"
  mkdir -p "$(dirname "$ob_schema")"
  cp "$ob_tmp/openbadgeslib-4.6.3/tests/fixtures/ob_schemas/$(basename "$ob_schema")" \
    "$ob_schema"
  rm -rf "$ob_tmp"
  echo "$ob_sha256  $ob_schema" | sha256sum --check --status
fi

# Ralph, the LRS the outbox tests and benchmarks/deliver.py deliver to. It pins
# versions of click and others that do not fit ours, so it lives in its own
# git-ignored virtualenv; its 5.1.0 extras forget requests, named here.
ralph_check='import importlib.metadata as m, fastapi, uvicorn, bcrypt, requests
assert m.version("ralph-malph") == "5.1.0"'
if ! .venv-ralph/bin/python -c "$ralph_check" >/dev/null 2>&1; then
  python3 -m venv .venv-ralph
  .venv-ralph/bin/pip install --quiet --upgrade pip
  .venv-ralph/bin/pip install --quiet 'ralph-malph[lrs,cli]==5.1.0' requests
fi

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/pytest "$@"
