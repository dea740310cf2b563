# syntax=docker/dockerfile:1.7
#
# Images of both controllers: one build, two small runtime targets.
#
#   docker build --target service-discovery -t gitops-service-discovery:0.1.0 .
#   docker build --target cleanup           -t gitops-cleanup:0.1.0 .
#
# The binaries are linked statically against musl (rustls + ring: no OpenSSL, no libc at run
# time) and run on distroless/static as UID/GID 65532 (nonroot), which is what the Helm chart's
# restricted securityContext expects (runAsNonRoot, readOnlyRootFilesystem, no capabilities).

ARG RUST_VERSION=1.95
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The builder runs on the target platform (native or emulated): musl-gcc links natively.
RUN case "$TARGETARCH" in \
      amd64|"") echo x86_64-unknown-linux-musl > /tmp/target ;; \
      arm64) echo aarch64-unknown-linux-musl > /tmp/target ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && rustup target add "$(cat /tmp/target)"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "$(cat /tmp/target)" \
      -p gitops-service-discovery -p gitops-cleanup \
 && mkdir -p /out \
 && cp "target/$(cat /tmp/target)/release/gitops-service-discovery" \
       "target/$(cat /tmp/target)/release/gitops-cleanup" /out/

FROM ${RUNTIME_IMAGE} AS service-discovery
LABEL org.opencontainers.image.title="gitops-service-discovery" \
      org.opencontainers.image.description="Keeps authentik proxy providers, applications and outpost assignments matching ProxyConfigs" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gitops-service-discovery /usr/local/bin/gitops-service-discovery
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/gitops-service-discovery"]

FROM ${RUNTIME_IMAGE} AS cleanup
LABEL org.opencontainers.image.title="gitops-cleanup" \
      org.opencontainers.image.description="Deletes finished Jobs and Pods after their retention period and sweeps orphaned authentik objects" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gitops-cleanup /usr/local/bin/gitops-cleanup
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/gitops-cleanup"]
