#!/usr/bin/env bash
# One command to the running system: installs what is missing, then `windlass dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --quiet --bin windlass -- dev "$@"
