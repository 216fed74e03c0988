#!/usr/bin/env bash
# Validates the deployment artifacts offline: the Dockerfile (hadolint), the Compose file
# (`docker-compose config`), the Helm chart (`helm lint`, `helm template` with the defaults and
# with every option on, the rendered manifests checked by kubernetes-validate against the
# Kubernetes schemas), and the hoopguard configs the Compose file and the chart ship (`hoopguard
# check`). Nothing here runs a container: these machines have no Docker engine or cluster.
#
# Installs the validators (tests/peers/deploy-requirements.txt) into target/peers/deploy the
# first time, and Debian's docker-compose when it is missing and this runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${HOOPGUARD_DEPLOY_TOOLS:-$PWD/target/peers/deploy}"
reqs=tests/peers/deploy-requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$reqs" "$venv/.installed-requirements"; then
    echo "check-deploy: installing validators into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$venv/.installed-requirements"
fi
export PATH="$venv/bin:$PATH"

if ! command -v docker-compose >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    else
        echo "check-deploy: docker-compose is missing: install Debian's docker-compose package" >&2
        exit 1
    fi
fi

bin="${HOOPGUARD_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --quiet -p hoopguard-cli --bin hoopguard
    bin=target/debug/hoopguard
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== hadolint Dockerfile"
hadolint Dockerfile

echo "== docker-compose config"
# The values .env would hold (none of them real).
compose_env=(
    IDP_ISSUER=https://login.example.com/realms/agents
    HOOPGUARD_GATEWAY_KEY=a-check-only-gateway-key-of-at-least-32-bytes
    POSTGRES_PASSWORD=check-only
    AGENT_ROLE_ARN=arn:aws:iam::123456789012:role/agents
)
env "${compose_env[@]}" docker-compose -f deploy/compose/docker-compose.yml config -q
# Without the required secrets it must refuse, naming what to set.
if env -u HOOPGUARD_GATEWAY_KEY IDP_ISSUER=x POSTGRES_PASSWORD=x AGENT_ROLE_ARN=x \
    docker-compose -f deploy/compose/docker-compose.yml config -q 2>"$work/err"; then
    echo "check-deploy: the Compose file accepted a missing HOOPGUARD_GATEWAY_KEY" >&2
    exit 1
fi
grep -q 'HOOPGUARD_GATEWAY_KEY' "$work/err"
env "${compose_env[@]}" "$bin" check --config deploy/compose/hoopguard.toml >/dev/null

echo "== helm lint, template, kubernetes-validate"
chart=deploy/helm/hoopguard
helm lint --strict "$chart"
helm template hg "$chart" >"$work/default.yaml"
helm template hg "$chart" \
    --set autoscaling.enabled=false --set replicaCount=3 \
    --set serviceMonitor.enabled=true --set networkPolicy.enabled=true \
    --set secrets.digestSigningKey.secretName=hg-digest \
    --set secrets.previousGatewayKey.secretName=hg-old-key \
    --set secrets.extraEnvFrom=hg-extra >"$work/all.yaml"
# The schema refuses what it does not know.
if helm template hg "$chart" --set replicaCount=two >/dev/null 2>&1 \
    || helm template hg "$chart" --set unknownValue=1 >/dev/null 2>&1; then
    echo "check-deploy: values.schema.json accepted a wrong value" >&2
    exit 1
fi
for f in "$work/default.yaml" "$work/all.yaml"; do
    # ServiceMonitor is a Prometheus Operator CRD, not in the Kubernetes schemas: warned about
    # and checked by helm lint only.
    kubernetes-validate --strict --quiet "$f"
done
grep -q 'kind: ServiceMonitor' "$work/all.yaml"
grep -q 'kind: NetworkPolicy' "$work/all.yaml"
grep -q 'name: HOOPGUARD_PREVIOUS_GATEWAY_KEY' "$work/all.yaml"
if grep -q 'name: HOOPGUARD_PREVIOUS_GATEWAY_KEY' "$work/default.yaml"; then
    echo "check-deploy: the default chart sets a previous gateway key" >&2
    exit 1
fi

# The chart's default config is one the gateway accepts (the database URL file given locally).
"$venv/bin/python" - "$work/default.yaml" "$work/hoopguard.toml" "$work/database-url" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap":
        toml = doc["data"]["hoopguard.toml"]
        open(sys.argv[2], "w").write(
            toml.replace("/run/secrets/hoopguard/database-url", sys.argv[3]))
        break
else:
    sys.exit("no ConfigMap rendered")
PY
echo "postgres://hoopguard:check@db.internal:5432/hoopguard" >"$work/database-url"
HOOPGUARD_GATEWAY_KEY=a-check-only-gateway-key-of-at-least-32-bytes \
    "$bin" check --config "$work/hoopguard.toml" >/dev/null
# Mid-rotation: both keys (the previous one must differ and be 32+ bytes too).
HOOPGUARD_GATEWAY_KEY=a-check-only-gateway-key-of-at-least-32-bytes \
    HOOPGUARD_PREVIOUS_GATEWAY_KEY=the-previous-check-only-gateway-key-32b \
    "$bin" check --config "$work/hoopguard.toml" >/dev/null

echo "check-deploy: OK"
