# One image per operator: docker build --build-arg OPERATOR=trading-algorithm --build-arg BIN=trading-operator .
FROM rust:1.95-slim AS build
ARG OPERATOR=trading-algorithm
ARG BIN=trading-operator
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ${OPERATOR} --bin ${BIN} \
 && cp target/release/${BIN} /operator

# Distroless, non-root: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /operator /operator
USER 65532:65532
ENTRYPOINT ["/operator"]
