# syntax=docker/dockerfile:1
# Build: docker build -t deploybot .
# Run:   docker run -v $PWD/config.yml:/etc/deploybot/config.yml \
#          -e DEPLOYBOT_DATABASE_URL=postgres://… -e DEPLOYBOT_WEBHOOK_SECRET=… \
#          -p 8080:8080 deploybot
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bot ./cmd/bot

# Slim Debian rather than distroless: pipeline steps run the repository's
# own commands with sh, like CI run: steps.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/deploybot --create-home deploybot
COPY --from=build /out/bot /usr/local/bin/bot
USER deploybot
WORKDIR /var/lib/deploybot
EXPOSE 8080
# tini reaps the processes pipeline commands leave behind.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/bot"]
CMD ["serve", "--config", "/etc/deploybot/config.yml"]
