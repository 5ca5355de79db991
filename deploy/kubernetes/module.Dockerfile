# syntax=docker/dockerfile:1
# The dynamic module as an image of its own, for the Envoy pods Envoy
# Gateway runs (gateway.yaml): an init container copies /libsse.so into a
# volume the Envoy container mounts. From the repository's root:
#   docker build -f deploy/kubernetes/module.Dockerfile -t sse-on-envoy/libsse:dev .
#
# Built on Debian bookworm (glibc 2.36), as old as the Debian 12 base of
# Envoy's distroless 1.40 image, which loads it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -buildmode=c-shared -o /out/libsse.so ./module

# busybox for the init container's cp; as an image volume only the file
# matters.
FROM busybox:1.37
COPY --from=build --chmod=0444 /out/libsse.so /libsse.so
USER 65532
