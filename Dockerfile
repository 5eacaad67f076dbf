# Multi-stage build: a static safedav binary on a minimal base, run as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/safedav . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/safedav /usr/local/bin/safedav
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
EXPOSE 8080
# Inside a container the server must listen on all interfaces to be reachable. On a
# non-loopback address safedav requires --users (or SAFEDAV_ANONYMOUS set explicitly).
ENV SAFEDAV_LISTEN=0.0.0.0:8080 SAFEDAV_ROOT=/data
ENTRYPOINT ["/usr/local/bin/safedav"]
CMD ["serve"]
