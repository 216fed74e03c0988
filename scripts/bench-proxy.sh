#!/usr/bin/env bash
# The AWS hop under load, side by side in one run: a fast local upstream (nginx answering a fixed
# sts:GetCallerIdentity document) reached directly, through nginx as a plain reverse proxy, and
# through hoopguard (SigV4 verification, classification, policy, recording, the `static` broker,
# re-signing, forwarding, masking) three times: recording `batched`, `every_event` (the default),
# and `batched` with the audit stream (to a file) and OTLP trace export (to nginx answering 200)
# on — what observability costs.
# wrk replays one signed GetCallerIdentity call (form body, as the AWS CLI sends it) at
# concurrency 1 (latency) and 8 (throughput).
#
#   bash scripts/bench-proxy.sh [SECONDS] [ROUNDS]      # default: 10 s per measurement, 2 rounds
#
# Needs nginx and wrk (Debian: apt-get install nginx wrk; the script installs them as root) and
# botocore to sign (the test peers' venv, target/peers/venv, or a venv it makes under target/).
# hoopguard logs at `warn` here (HOOPGUARD_LOG=info adds the per-call decision line; nginx's
# access log is off too). Client, proxies and upstream share the machine's cores: read the ratios, not the absolute
# figures. Every response must be a 200; the script fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-2}"

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
    else
        echo "bench-proxy.sh: needs nginx and wrk (apt-get install nginx wrk)" >&2
        exit 1
    fi
fi

py="${HOOPGUARD_PEERS:-$PWD/target/peers/venv}/bin/python"
if ! "$py" -c 'import botocore' 2>/dev/null; then
    venv="$PWD/target/bench/venv"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check botocore
    fi
    py="$venv/bin/python"
fi

# HOOPGUARD_BIN: measure another build (an older commit's, say) instead of this tree's.
if [ -z "${HOOPGUARD_BIN:-}" ]; then
    cargo build --release --quiet -p hoopguard-cli
fi
bin="${HOOPGUARD_BIN:-$PWD/target/release/hoopguard}"

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port)
px=$(free_port)
hg=$(free_port)
adm=$(free_port)
otlp=$(free_port)

answer='<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/agents/bench</Arn><UserId>AROA:bench</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>'
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    # The upstream: a fixed STS answer.
    server {
        listen 127.0.0.1:$up;
        location / { default_type text/xml; return 200 '$answer'; }
    }
    # nginx as a plain reverse proxy in front of it: pooled upstream connections, like hoopguard's.
    upstream backend { server 127.0.0.1:$up; keepalive 64; }
    # A stand-in OTLP/HTTP collector: takes every export, answers an empty (valid) response.
    server {
        listen 127.0.0.1:$otlp;
        access_log $work/nginx/otlp.log;
        location / { default_type application/x-protobuf; return 200 ''; }
    }
    server {
        listen 127.0.0.1:$px;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)

# Two hoopguards, the same but for the recording's durability: batched (fsync on an interval)
# and every_event (the default: an event is on disk before its call goes on; concurrent calls
# share one commit).
start_hoopguard() { # NAME PORT ADMIN_PORT DURABILITY [EXTRA_TOML]
    cat >"$work/$1.toml" <<EOF
data_dir = "$work/$1-data"
[listeners.aws]
bind = "127.0.0.1:$2"
[listeners.admin]
bind = "127.0.0.1:$3"
[identity.dev_issuer]
enabled = true
audience = "hoopguard"
[record]
durability = "$4"
[aws.connections.default]
broker = "static"
access_key_id = "AKIDBENCH"
secret_access_key = "bench-secret"
endpoint = "http://127.0.0.1:$up"
[[policy.rules]]
name = "bench"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity"]
${5:-}
EOF
    HOOPGUARD_LOG="${HOOPGUARD_LOG:-warn}" "$bin" serve --config "$work/$1.toml" 2>"$work/$1.log" &
    pids+=($!)
}
hge=$(free_port)
adme=$(free_port)
start_hoopguard hoopguard "$hg" "$adm" batched
start_hoopguard hoopguard-every "$hge" "$adme" every_event
hgo=$(free_port)
admo=$(free_port)
start_hoopguard hoopguard-observed "$hgo" "$admo" batched "[telemetry]
audit = \"$work/audit.jsonl\"
otlp_endpoint = \"http://127.0.0.1:$otlp\""

for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$up/" >/dev/null && curl -s "http://127.0.0.1:$hg/" >/dev/null \
        && curl -s "http://127.0.0.1:$hge/" >/dev/null && curl -s "http://127.0.0.1:$hgo/" >/dev/null; then
        break
    fi
    sleep 0.1
done

# A wrk script that replays one call signed by botocore for that host (wrk sends Host from the URL).
sign() { # PORT ACCESS_KEY SECRET TOKEN > lua
    "$py" - "$@" <<'EOF'
import sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
port, key, secret, token = sys.argv[1:5]
body = "Action=GetCallerIdentity&Version=2011-06-15"
req = AWSRequest("POST", f"http://127.0.0.1:{port}/", data=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
SigV4Auth(Credentials(key, secret, token or None), "sts", "us-east-1").add_auth(req)
print('wrk.method = "POST"')
print(f'wrk.body = "{body}"')
for k, v in req.headers.items():
    print(f'wrk.headers["{k}"] = "{v}"')
EOF
}
sign "$up" AKIDBENCH bench-secret "" >"$work/direct.lua"
sign "$px" AKIDBENCH bench-secret "" >"$work/nginx.lua"
for t in "hoopguard $hg" "hoopguard-every $hge" "hoopguard-observed $hgo"; do
    set -- $t
    "$bin" dev-token --config "$work/$1.toml" --sub bench --groups dev --ttl 1h >"$work/$1.token"
    curl -sf -H "Authorization: $(cat "$work/$1.token")" "http://127.0.0.1:$2/v1/aws/credentials" >"$work/$1.creds.json"
    read -r key secret token < <("$py" -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["AccessKeyId"], c["SecretAccessKey"], c["Token"])' "$work/$1.creds.json")
    sign "$2" "$key" "$secret" "$token" >"$work/$1.lua"
done

# One measurement: prints "p50_us p99_us req_per_s"; fails on any non-200 or socket error.
measure() { # NAME PORT CONNECTIONS
    local threads=1
    [ "$3" -gt 1 ] && threads=2
    local out
    out=$(wrk -t"$threads" -c"$3" -d"${secs}s" --latency -s "$work/$1.lua" "http://127.0.0.1:$2/")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "bench-proxy.sh: $1 at concurrency $3 had failures:" >&2
        echo "$out" >&2
        exit 1
    fi
    "$py" - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
def us(q):
    m = re.search(q + r"%\s+([\d.]+)(us|ms|s)\b", out)
    if not m:
        sys.exit(f"bench-proxy.sh: cannot read the {q}th percentile from wrk:\n{out}")
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
p50, p99 = us("50"), us("99")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
print(f"{p50:.0f} {p99:.0f} {rps:.0f}")
EOF
}

# Warm up each path once, then interleave the rounds so drift hits all paths alike.
paths=("direct $up" "nginx $px" "hoopguard $hg" "hoopguard-every $hge" "hoopguard-observed $hgo")
for t in "${paths[@]}"; do
    set -- $t
    wrk -t1 -c8 -d1s -s "$work/$1.lua" "http://127.0.0.1:$2/" >/dev/null
done
declare -A p50 p99 rps
for r in $(seq "$rounds"); do
    for t in "${paths[@]}"; do
        set -- $t
        read -r a b _ < <(measure "$1" "$2" 1)
        read -r _ _ c < <(measure "$1" "$2" 8)
        p50[$1]+="$a "
        p99[$1]+="$b "
        rps[$1]+="$c "
    done
done

# The observed gateway audited its calls and exported its spans (each export is a POST in the
# stand-in collector's access log).
lines=$(wc -l <"$work/audit.jsonl")
exports=$(grep -c 'POST /v1/traces' "$work/nginx/otlp.log" || true)
if [ "$lines" -lt 1 ] || [ "$exports" -lt 1 ]; then
    echo "bench-proxy.sh: the observed gateway wrote $lines audit lines and made $exports exports; its log:" >&2
    cat "$work/hoopguard-observed.log" >&2
    exit 1
fi
"$py" - "$secs" "$lines" "$exports" \
    "${p50[direct]}" "${p50[nginx]}" "${p50[hoopguard]}" "${p50[hoopguard-every]}" "${p50[hoopguard-observed]}" \
    "${p99[direct]}" "${p99[nginx]}" "${p99[hoopguard]}" "${p99[hoopguard-every]}" "${p99[hoopguard-observed]}" \
    "${rps[direct]}" "${rps[nginx]}" "${rps[hoopguard]}" "${rps[hoopguard-every]}" "${rps[hoopguard-observed]}" <<'EOF'
import sys
v = [list(map(float, a.split())) for a in sys.argv[4:19]]
keys = "dnheo"
p50, p99, rps = dict(zip(keys, v[0:5])), dict(zip(keys, v[5:10])), dict(zip(keys, v[10:15]))
f = lambda xs, fmt: " / ".join(fmt.format(x) for x in xs)
print(f"\nwrk, {sys.argv[1]} s per measurement, rounds separated by ' / ':\n")
print("| path | p50, concurrency 1 | p99, concurrency 1 | req/s, concurrency 8 |")
print("| --- | --- | --- | --- |")
names = [("d", "direct"), ("n", "nginx reverse proxy"), ("h", "hoopguard, recording batched"),
         ("e", "hoopguard, recording every_event"),
         ("o", "hoopguard, batched, audit stream + OTLP traces")]
for k, name in names:
    print(f"| {name} | {f(p50[k], '{:.0f} µs')} | {f(p99[k], '{:.0f} µs')} | {f(rps[k], '{:,.0f}')} |")
added = lambda k: [a - d for a, d in zip(p50[k], p50["d"])]
print(f"\np50 added over direct: nginx {f(added('n'), '{:+.0f} µs')}, hoopguard batched "
      f"{f(added('h'), '{:+.0f} µs')}, every_event {f(added('e'), '{:+.0f} µs')}")
ratio = lambda a, b: f([x / y for x, y in zip(rps[a], rps[b])], '{:.2f}')
print(f"req/s at concurrency 8: hoopguard batched / nginx {ratio('h', 'n')}; "
      f"every_event / batched {ratio('e', 'h')}; audit + traces on / off {ratio('o', 'h')} "
      f"({sys.argv[2]} audit lines written, {sys.argv[3]} OTLP exports)")
EOF
