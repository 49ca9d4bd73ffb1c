# Multi-stage build: a static binary on a distroless base, running as a
# non-root user, with the data directory as a volume.
#   docker build -t accel .
#   docker run -p 8080:8080 -p 127.0.0.1:9090:9090 -e ACCEL_ADMIN_TOKEN=... \
#     -v accel-data:/var/lib/accel -v $PWD/accel.yaml:/etc/accel/accel.yaml:ro accel
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/accel ./cmd/accel \
 && mkdir -p /out/data && /out/accel version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/accel /usr/local/bin/accel
COPY examples/single-origin.yaml /etc/accel/accel.yaml
COPY --from=build --chown=65532:65532 /out/data /var/lib/accel
USER 65532:65532
VOLUME ["/var/lib/accel"]
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/accel"]
CMD ["-config", "/etc/accel/accel.yaml"]
