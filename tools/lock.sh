#!/usr/bin/env bash
# Refreshes the Python lock files from pyproject.toml: the newest versions its ranges allow, each
# with the SHA-256 of every file PyPI has for it, so an install checks what it downloads
# (`pip install --require-hashes`). Two locks, one resolution: requirements-dev.lock is what
# `make setup` and CI install (runtime, dev tools, setuptools to build the project); requirements.lock
# is the runtime subset the image installs, resolved under the dev lock as a constraint so that
# both pin the same versions (tests/unit/test_lock.py checks that). Resolved for this machine's
# platform and Python (linux x86_64, CPython 3.11): markers of other platforms are not evaluated.
# Usage: tools/lock.sh [pip-compile options], e.g. `--upgrade-package cryptography`; `make lock`
# passes --upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
compile=(.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras
         --no-emit-index-url --no-emit-find-links)
export CUSTOM_COMPILE_COMMAND="make lock"
"${compile[@]}" "$@" --extra dev --all-build-deps -o requirements-dev.lock pyproject.toml
# The runtime lock always follows the dev lock: rebuilt from scratch under it as a constraint.
rm -f requirements.lock
"${compile[@]}" -c requirements-dev.lock -o requirements.lock pyproject.toml
echo "locked: $(grep -c '^[a-z0-9]' requirements-dev.lock) packages (dev), $(grep -c '^[a-z0-9]' requirements.lock) (runtime)"
