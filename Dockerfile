# Baton server image: builds the release binary, ships it on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p baton

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/baton /usr/local/bin/baton
COPY config /app/config
WORKDIR /app
EXPOSE 7777
ENTRYPOINT ["baton"]
CMD ["serve"]
