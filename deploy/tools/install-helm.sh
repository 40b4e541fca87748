#!/usr/bin/env bash
# Build the helm binary from the Go module proxy into the Spanline cache folder.
#
# The tests and docs find helm at $SPANLINE_HELM_BIN_DIR/helm (default
# ~/.cache/spanline/bin/helm). Building from source keeps the install inside the package
# registries this project may reach; a prebuilt release download would need another host.
# The build takes about 2-5 minutes on 2 cores and is skipped when the stamp file beside the binary
# names the pinned version. A `go install` build reports only "v4.3" from `helm version`, because
# release builds set the full version through linker flags, so the stamp file records it instead.
set -euo pipefail

HELM_MODULE="helm.sh/helm/v4"
HELM_VERSION="${SPANLINE_HELM_VERSION:-v4.3.2}"
BIN_DIR="${SPANLINE_HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spanline/bin}"
HELM_BIN="$BIN_DIR/helm"
STAMP="$BIN_DIR/helm.version"

if [[ -x "$HELM_BIN" ]] && [[ "$(cat "$STAMP" 2>/dev/null)" == "${HELM_MODULE}@${HELM_VERSION}" ]]; then
    echo "helm ${HELM_VERSION} already built at ${HELM_BIN}"
    exit 0
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
    echo "go not found on PATH or in /usr/local/go/bin: install Go 1.24 or newer to build helm ${HELM_VERSION}" >&2
    exit 1
fi

mkdir -p "$BIN_DIR"
echo "building ${HELM_MODULE}/cmd/helm@${HELM_VERSION} into ${BIN_DIR} (takes a few minutes)"
GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -trimpath" "$GO" install "${HELM_MODULE}/cmd/helm@${HELM_VERSION}"
echo "${HELM_MODULE}@${HELM_VERSION}" > "$STAMP"
echo "built ${HELM_BIN} from ${HELM_MODULE}@${HELM_VERSION}"
