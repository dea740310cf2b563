# syntax=docker/dockerfile:1.7
#
# Images of both controllers for people with a container engine: one build, two small runtime
# targets, with the same contents as `cargo xtask image` (which builds them without an engine).
#
#   docker build --target service-discovery -t gitops-service-discovery:0.1.0 .
#   docker build --target cleanup           -t gitops-cleanup:0.1.0 .
#
# The binaries are linked statically against glibc (`+crt-static` on the gnu target, as
# `cargo xtask image` does: the musl target cannot be installed on the project's machines, so
# musl binaries would be binaries nobody tested). rustls + ring: no OpenSSL, no libc at run time.
# The runtime base is empty apart from /etc/passwd and /etc/group for UID/GID 65532 (nonroot,
# deploy/image/etc/) and Debian's CA bundle: no shell. The process runs as 65532:65532, which is
# what the Helm chart's restricted securityContext expects (runAsNonRoot, readOnlyRootFilesystem).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The builder runs on the target platform (native or emulated): its own gnu target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" \
      -p gitops-service-discovery -p gitops-cleanup \
 && mkdir -p /out \
 && cp "target/$target/release/gitops-service-discovery" \
       "target/$target/release/gitops-cleanup" /out/

FROM scratch AS base
COPY deploy/image/etc/passwd deploy/image/etc/group /etc/
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

FROM base AS service-discovery
LABEL org.opencontainers.image.title="gitops-service-discovery" \
      org.opencontainers.image.description="Keeps authentik proxy providers, applications and outpost assignments matching ProxyConfigs" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gitops-service-discovery /usr/local/bin/gitops-service-discovery
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/gitops-service-discovery"]

FROM base AS cleanup
LABEL org.opencontainers.image.title="gitops-cleanup" \
      org.opencontainers.image.description="Deletes finished Jobs and Pods after their retention period and sweeps orphaned authentik objects" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gitops-cleanup /usr/local/bin/gitops-cleanup
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/gitops-cleanup"]
