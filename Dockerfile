# The orderflow binary for docker-compose.yml. CGO is off: the embedded engine
# (chDB) is loaded at run time with purego only when selected, so this image
# runs against a ClickHouse server without libchdb.so.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/orderflow ./cmd/orderflow

FROM debian:bookworm-slim
COPY --from=build /out/orderflow /orderflow
RUN useradd --system --uid 10001 orderflow
USER orderflow
EXPOSE 8080
ENTRYPOINT ["/orderflow"]
