# syntax=docker/dockerfile:1
# Build: docker build -t deploybot .
# Run:   docker run -v $PWD/config.yml:/etc/deploybot/config.yml \
#          -e DEPLOYBOT_DATABASE_URL=postgres://… -e DEPLOYBOT_WEBHOOK_SECRET=… \
#          --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#          -p 8080:8080 deploybot
# Repository commands run in a bubblewrap sandbox, which needs unprivileged
# user namespaces: Docker's default seccomp and AppArmor profiles refuse
# them (hence the options above, or a profile that allows unshare/clone
# with CLONE_NEWUSER). Without them the bot refuses to start unless the
# config says runner.isolation: none, and then never runs fork code.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context (.dockerignore): `bot version` says what
# --build-arg VERSION=$(git describe --always --dirty) gives it.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/bot ./cmd/bot

# Slim Debian rather than distroless: pipeline steps run the repository's
# own commands with sh, like CI run: steps, inside bubblewrap.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git tini bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/deploybot --create-home deploybot
COPY --from=build /out/bot /usr/local/bin/bot
USER deploybot
WORKDIR /var/lib/deploybot
EXPOSE 8080
# Docker asks the bot whether it is up with its own probe (the image has no
# curl): GET /healthz, exit 0 on a 2xx. If server.address in the config is
# not :8080, override it: docker run --health-cmd "bot probe --url http://127.0.0.1:PORT/healthz".
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/bot", "probe", "--url", "http://127.0.0.1:8080/healthz", "--timeout", "4s"]
# tini reaps the processes pipeline commands leave behind.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/bot"]
CMD ["serve", "--config", "/etc/deploybot/config.yml"]
