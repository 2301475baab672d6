# The windlass binary for the production compose file. Build: docker build -t windlass .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin windlass

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 windlass
COPY --from=build /src/target/release/windlass /usr/local/bin/windlass
USER windlass
ENTRYPOINT ["windlass", "--log-format", "json"]
