# syntax=docker/dockerfile:1
# For teams with a container engine. `cargo xtask images` builds the same five images without
# one (README "Images"); both lay an image out alike: the binary at /usr/local/bin/<binary>,
# run as 65532, nothing else of ours. One target per operator:
#   docker build --target payment-service-operator   -t payments-engine/payment-service-operator:0.1.0 .
#   docker build --target trading-operator           -t payments-engine/trading-operator:0.1.0 .
#   docker build --target batch-processor-operator   -t payments-engine/batch-processor-operator:0.1.0 .
#   docker build --target clearing-adapter-operator  -t payments-engine/clearing-adapter-operator:0.1.0 .
#   docker build --target saga-orchestrator-operator -t payments-engine/saga-orchestrator-operator:0.1.0 .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target folder are build caches, so a change to one crate rebuilds that
# crate, not every dependency (a plain `COPY . .` build starts from nothing each time).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile image \
      -p payment-service -p trading-algorithm -p batch-processor -p clearing-adapter -p saga-orchestrator \
 && mkdir /out \
 && cp target/image/payment-service-operator target/image/trading-operator \
       target/image/batch-processor-operator target/image/clearing-adapter-operator \
       target/image/saga-orchestrator-operator /out/

# glibc, libgcc and CA certificates from Debian 12, user 65532; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532

FROM runtime AS payment-service-operator
COPY --from=build /out/payment-service-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/payment-service-operator"]

FROM runtime AS trading-operator
COPY --from=build /out/trading-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/trading-operator"]

FROM runtime AS batch-processor-operator
COPY --from=build /out/batch-processor-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/batch-processor-operator"]

FROM runtime AS clearing-adapter-operator
COPY --from=build /out/clearing-adapter-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/clearing-adapter-operator"]

FROM runtime AS saga-orchestrator-operator
COPY --from=build /out/saga-orchestrator-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/saga-orchestrator-operator"]
