# syntax=docker/dockerfile:1
#
# One image with regstat's four binaries, built exactly as deploy/dev.sh builds them
# (`cargo build --release --locked --bins`, same Cargo.lock, same release profile; only the
# debug line tables are stripped):
#
#   /usr/local/bin/regstat-receiver   the webhook (port 8080)       command: regstat-receiver
#   /usr/local/bin/regstat-worker     the queue consumer (port 9090) command: regstat-worker
#   /usr/local/bin/regstat-console    pages and JSON API (port 8081) command: regstat-console
#   /usr/local/bin/regstat            the operator CLI              command: regstat migrate | status | dlq ...
#
#   docker build -t regstat .
#
# Stages: `chef` (toolchain + cargo-chef), `planner` (the dependency recipe), `builder`
# (dependencies, cached until Cargo.toml/Cargo.lock change; then the workspace) and the
# runtime: distroless (glibc, CA certificates, no shell, no package manager, no compiler),
# running as an unprivileged user. Health checks run the binaries' own `healthcheck`
# subcommand, so the image needs no curl. No configuration or secret is baked in: settings
# come from REGSTAT__* variables and an optional REGSTAT_CONFIG file (docs/OPERATIONS.md).

# The workspace's rust-version is the minimum; the image builds with this toolchain.
ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe lists the workspace's manifests and lock file only, so the next stage's
# dependency layer is rebuilt only when they change, not on every source edit.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# The release profile keeps line tables (debug = "line-tables-only"): about 100 MB per binary.
# The image drops them (symbols stay, so backtraces still name functions): ~20 MB each.
RUN cargo build --release --locked --bins \
    && mkdir /out \
    && for bin in regstat-receiver regstat-worker regstat-console regstat; do \
         strip --strip-debug -o "/out/$bin" "target/release/$bin"; \
       done

# glibc, libgcc and CA certificates (the worker's registry callbacks verify TLS against the
# system store) and nothing else. Same Debian release as the builder, so the same glibc.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="regstat" \
      org.opencontainers.image.description="Registry notifications to RabbitMQ to PostgreSQL: receiver, worker, console and CLI" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/regstat/regstat"
COPY --from=builder /out/ /usr/local/bin/
# distroless's `nonroot` user, numerically, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# receiver.listen and worker.listen defaults.
EXPOSE 8080 9090
# Every deployment names its command; bare, the image prints the CLI's help.
CMD ["regstat", "--help"]
