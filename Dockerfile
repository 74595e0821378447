# Baton server image: builds the web app with Node, the release binary with Rust (embedding
# the built web app through BATON_WEB_DIST), and ships the binary on a slim Debian.
FROM node:20-bookworm AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN node_modules/.bin/vite build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=web /web/dist /web-dist
RUN BATON_WEB_DIST=/web-dist cargo build --release -p baton

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/baton /usr/local/bin/baton
COPY config /app/config
WORKDIR /app
EXPOSE 7777
ENTRYPOINT ["baton"]
CMD ["serve"]
