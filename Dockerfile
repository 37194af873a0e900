# syntax=docker/dockerfile:1
# Build: docker build -t gregor .
# Run:   docker run -p 9092:9092 -v gregor-data:/var/lib/gregor gregor
# Configure with the same flags (appended to the command) or KAFKA_* variables as apache/kafka,
# e.g. -e KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://myhost:9092 -e KAFKA_NUM_PARTITIONS=4.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
COPY protocol-tests/Cargo.toml protocol-tests/Cargo.toml
COPY protocol-tests/src protocol-tests/src
COPY src src
# Shipped stripped (symbols and debug info stay in the build stage): 15 MB instead of 120 MB.
RUN cargo build --release --locked --bin gregor && strip target/release/gregor

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/gregor gregor \
    && mkdir -p /var/lib/gregor && chown gregor /var/lib/gregor
COPY --from=build /src/target/release/gregor /usr/local/bin/gregor
USER gregor
EXPOSE 9092
VOLUME ["/var/lib/gregor"]
# Listen on all interfaces inside the container; clients on the host reach it through the
# published port at localhost:9092 (the advertised default for a wildcard listener).
ENV KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    KAFKA_LOG_DIRS=/var/lib/gregor
ENTRYPOINT ["/usr/local/bin/gregor"]
