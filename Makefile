# cuerator: Kubernetes operators from CUE templates.
#
#   make demo    build what is missing, start the local cluster (unless
#                KUBECONFIG is set), install the CRDs, run the operator and
#                apply examples/
#   make test    every test, against a real local cluster

SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/cuerator
IMG ?= cuerator:dev
# What `cuerator version` prints: the git tag or commit, else dev.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.DEFAULT_GOAL := help
.PHONY: help build generate install uninstall run test test-long bench demo demo-stop cue-tool kubectl-plugin

help: ## List the targets and what they do
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_-]+:[^#]*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the cuerator binary into bin/, stamped with VERSION
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/cuerator

# kubectl runs kubectl-cuerator for `kubectl cuerator`, and asks
# kubectl_complete-cuerator for its completions.
kubectl-plugin: build ## Install bin/kubectl-cuerator and its completion helper, for `kubectl cuerator` (put bin/ on PATH)
	cp $(BIN) bin/kubectl-cuerator
	install -m 0755 hack/kubectl_complete-cuerator bin/kubectl_complete-cuerator

generate: ## Regenerate deploy/crds, deploy/rbac/role.yaml, deploy/live-templates and charts/cuerator from the CUE templates
	$(GO) run ./cmd/cuerator crds --output-dir deploy/crds
	$(GO) run ./cmd/cuerator rbac --namespace cuerator-system >deploy/rbac/role.yaml.tmp
	mv deploy/rbac/role.yaml.tmp deploy/rbac/role.yaml
	$(GO) run ./cmd/cuerator configmap --output-dir deploy/live-templates
	$(GO) run ./cmd/cuerator chart --output-dir charts/cuerator

# The stock cue CLI at the version cuerator embeds: the corpus test checks
# that `cue vet` agrees with the CRDs and with `cuerator vet`.
CUE_VERSION := v0.17.1

cue-tool: ## Install the cue CLI into bin/cue
	GOBIN=$(abspath bin) $(GO) install cuelang.org/go/cmd/cue@$(CUE_VERSION)

install: ## Apply the CRDs to the cluster in KUBECONFIG
	kubectl apply --server-side -k deploy/crds/

uninstall: ## Delete the CRDs (and so every CR) from the cluster in KUBECONFIG
	kubectl delete --ignore-not-found -k deploy/crds/

# deploy/$(OVERLAY) with the image set to $(IMG), through a throwaway
# overlay: kubectl's built-in kustomize has no `edit set image`, and an
# overlay must name its base by a relative path, so it lives in deploy/
# while it is used. OVERLAY=live-templates runs the operator on templates
# from a ConfigMap, which it follows live and whose CRDs it installs.
OVERLAY ?= default

define IMAGE_OVERLAY
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../$(OVERLAY)
patches:
- target:
    kind: Deployment
    name: cuerator-controller-manager
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/image
      value: $(IMG)
endef
export IMAGE_OVERLAY
WITH_IMAGE_OVERLAY = overlay=$$(mktemp -d deploy/.image.XXXXXX) && trap 'rm -rf "$$overlay"' EXIT && \
	printf '%s\n' "$$IMAGE_OVERLAY" >"$$overlay/kustomization.yaml" &&

.PHONY: manifests deploy undeploy

manifests: ## Print the manifests of deploy/$(OVERLAY) with the operator image $(IMG)
	@$(WITH_IMAGE_OVERLAY) kubectl kustomize "$$overlay"

# With live templates the operator installs the CRDs; otherwise they come first.
ifeq ($(OVERLAY),default)
deploy: install
endif
deploy: ## Install the CRDs, then the operator of deploy/$(OVERLAY) (image $(IMG)) in cuerator-system, and wait for it
	$(WITH_IMAGE_OVERLAY) kubectl apply --server-side -k "$$overlay"
	kubectl -n cuerator-system rollout status deployment/cuerator-controller-manager --timeout=3m

undeploy: ## Remove the operator, its namespace and RBAC; the CRDs and CRs stay (make uninstall)
	$(WITH_IMAGE_OVERLAY) kubectl delete --ignore-not-found -k "$$overlay"

run: build ## Run the operator in the foreground against KUBECONFIG (Ctrl-C stops it)
	$(BIN) run --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

# The fuzzer runs for a bounded count of specs, not a time: a -fuzztime
# duration can fail with a bare "context deadline exceeded" when it ends
# (a race in Go 1.26's fuzz coordinator, go.dev/issue/75804). test-long
# runs it longer, with every fault test's long cases and 100,000 renders
# for the heap check.
FUZZTIME ?= 30000x

test: cluster-tools cue-tool ## Run every test, with the race detector, against a real local cluster, then fuzz the renderer for $(FUZZTIME)
	$(GO) vet ./...
	$(GO) test -race ./... -count=1 -timeout 60m
	$(GO) test ./render -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME)

test-long: cluster-tools cue-tool ## make test's suite with the long cases (more faults, 100,000 renders) and 1,000,000 fuzzed specs
	$(GO) vet ./...
	CUERATOR_TEST_LONG=1 CUERATOR_RENDERS=100000 $(GO) test ./... -count=1 -timeout 90m
	$(GO) test ./render -run '^$$' -fuzz '^FuzzRender$$' -fuzztime 1000000x

bench: cluster-tools ## The benchmarks of BENCHMARKS.md, side by side on the local cluster
	$(GO) test ./render -run '^$$' -bench Render -benchmem -benchtime 2s
	$(GO) test ./test/e2e -run '^$$' -bench NoopApply -benchtime 20x -timeout 30m
	$(GO) test ./test/e2e -run '^$$' -bench DriftLatency -benchtime 1x -timeout 30m
	CUERATOR_BENCH_WEBAPPS=100,1000 $(GO) test ./test/e2e -run '^$$' -bench Convergence -benchtime 1x -timeout 60m
	CUERATOR_BENCH_MEMORY_CRS=1000 $(GO) test ./test/e2e -run '^$$' -bench OperatorMemory -benchtime 1x -timeout 90m
	CUERATOR_BENCH_RESTART=memcached:1000,webapp:1000 $(GO) test ./test/e2e -run '^$$' -bench Restart -benchtime 1x -timeout 90m

demo: build ## The walking skeleton: cluster, CRDs, operator, examples
	bash examples/demo.sh

demo-stop: ## Stop the demo's operator and the local cluster
	bash examples/demo.sh stop

# Container image. There is no image in the tests (they need no container
# engine); they build the binary with hack/build-static.sh, as the Dockerfile does.
CONTAINER_TOOL ?= docker

.PHONY: docker-build docker-push

docker-build: ## Build the operator image $(IMG) (static binary on distroless, non-root), stamped with VERSION
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMG) .

docker-push: ## Push the operator image $(IMG)
	$(CONTAINER_TOOL) push $(IMG)

# Local cluster (see test/cluster): a real control plane with kwok nodes.
CLUSTER_DIR ?= .cluster
LOCALCLUSTER := bin/localcluster

.PHONY: cluster-tools cluster-up cluster-down

cluster-tools: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok into bin/cluster
	bash test/tools/build.sh

# The cluster runs detached (setsid) so that Ctrl-C in this terminal does not
# reach it; `make cluster-down` stops it.
cluster-up: cluster-tools ## Start the local cluster in the background (no-op if it is up)
	@kc=$(CLUSTER_DIR)/kubeconfig; \
	if [ -f $$kc ] && kubectl --kubeconfig $$kc get --raw /readyz >/dev/null 2>&1; then \
		echo "cluster already up"; \
	else \
		$(GO) build -o $(LOCALCLUSTER) ./test/cluster/cmd/localcluster || exit 1; \
		mkdir -p $(CLUSTER_DIR); \
		setsid nohup $(LOCALCLUSTER) up --dir $(CLUSTER_DIR) >$(CLUSTER_DIR)/localcluster.log 2>&1 </dev/null & \
		pid=$$!; \
		for i in $$(seq 400); do \
			if [ -f $$kc ] && kubectl --kubeconfig $$kc get --raw /readyz >/dev/null 2>&1; then break; fi; \
			if ! kill -0 $$pid 2>/dev/null; then \
				echo "cluster failed to start; $(CLUSTER_DIR)/localcluster.log says:"; \
				tail -n 40 $(CLUSTER_DIR)/localcluster.log; exit 1; \
			fi; \
			if [ $$i = 400 ]; then echo "cluster not ready after 200s; see $(CLUSTER_DIR)/"; exit 1; fi; \
			sleep 0.5; \
		done; \
	fi; \
	echo "export KUBECONFIG=$(abspath $(CLUSTER_DIR))/kubeconfig"

cluster-down: ## Stop the local cluster and remove its data
	$(GO) build -o $(LOCALCLUSTER) ./test/cluster/cmd/localcluster
	$(LOCALCLUSTER) down --dir $(CLUSTER_DIR)

# GitOps and OLM: Argo CD health checks for every kind, and the OLM bundle.
BUNDLE_VERSION ?= 0.1.0

.PHONY: argocd-health bundle

argocd-health: ## Regenerate deploy/argocd/argocd-cm-patch.yaml (a test fails when it is stale)
	$(GO) run ./cmd/cuerator argocd-health --output-file deploy/argocd/argocd-cm-patch.yaml

bundle: ## Write and validate the OLM bundle (bundle/) for BUNDLE_VERSION and IMG
	$(GO) run ./cmd/cuerator bundle --version $(BUNDLE_VERSION) --image $(IMG) --output-dir bundle
