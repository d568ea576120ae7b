# Builds every MoonMind Broker binary (brokerd, queue-worker, brokerctl,
# devcert) in a Go image and copies them into a slim Debian runtime image.
# docker-compose.yml runs each service from this one image with its own
# command.
#
# NOTE: no Docker engine runs on the machines this project is developed
# and tested on, so this file is checked by `make compose-check` (a parser)
# but has never been built here.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
	./cmd/brokerd ./cmd/queue-worker ./cmd/brokerctl ./cmd/devcert

FROM debian:bookworm-slim AS runtime
# curl serves the health check of the api service.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates curl \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin broker
COPY --from=build /out/ /usr/local/bin/
USER broker
EXPOSE 8443
ENTRYPOINT []
CMD ["brokerd", "serve"]
