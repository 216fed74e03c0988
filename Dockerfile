# hoopguard: the gateway binary on a minimal, non-root base.
#
#   docker build -t hoopguard .
#   docker run --rm -p 8787:8787 -p 8788:8788 -p 8789:8789 \
#       -v $PWD/hoopguard.toml:/etc/hoopguard/hoopguard.toml:ro -v hoopguard-data:/var/lib/hoopguard \
#       -e HOOPGUARD_GATEWAY_KEY hoopguard
#
# No secret is baked in: the gateway key, the database URL and the digest-signing key come from
# the environment or mounted files at run time (see README, "Deploying").

# --- build ---------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hoopguard-cli \
    && install -D -m 0755 target/release/hoopguard /out/hoopguard

# --- run -----------------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates, a `nonroot` user (65532) and nothing else (no
# shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hoopguard /usr/local/bin/hoopguard
# The configuration (read-only) and the data directory (recordings, SQLite state when no
# [store] is configured, the development issuer's key).
VOLUME ["/etc/hoopguard", "/var/lib/hoopguard"]
ENV HOOPGUARD_DATA_DIR=/var/lib/hoopguard
USER 65532:65532
# aws, mcp, admin (health, readiness, metrics, approvals API)
EXPOSE 8787 8788 8789
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/hoopguard", "health", "--url", "http://127.0.0.1:8789/healthz"]
ENTRYPOINT ["/usr/local/bin/hoopguard"]
CMD ["serve", "--config", "/etc/hoopguard/hoopguard.toml"]
