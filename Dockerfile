# syntax=docker/dockerfile:1
# The operator image: `make docker-build IMG=...`. The CUE templates are
# embedded in the binary, so the image holds nothing else.

# The builder runs on the build machine's platform and cross-compiles, which
# is fast with buildx for every target platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
# What `cuerator version` prints: make docker-build passes the git version.
ARG VERSION=dev
WORKDIR /src
# Dependencies first: this layer survives source edits.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# hack/build-static.sh holds the flags (CGO_ENABLED=0, -trimpath, -s -w),
# shared with the e2e test that checks the binary is static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH VERSION=$VERSION hack/build-static.sh /out/cuerator

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.version=$VERSION org.opencontainers.image.licenses=Apache-2.0
COPY --from=builder /out/cuerator /cuerator
USER 65532:65532
ENTRYPOINT ["/cuerator"]
CMD ["run"]
