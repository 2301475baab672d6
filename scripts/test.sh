#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test against real parts
# (Temporal dev server, SQLite, the local PostgreSQL, the stand-ins), then lint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# PostgreSQL for the store suite: the machine's local server (trust auth) unless told.
export WINDLASS_TEST_POSTGRES_URL="${WINDLASS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
# Benchmarks are built by clippy below but not run here: they print figures, they do not test.
cargo test --workspace
.venv/bin/python scripts/check_compose.py "${CARGO_TARGET_DIR:-target}/debug/windlass" docker-compose.yml
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
