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

.PHONY: build generate install uninstall run test demo demo-stop cue-tool

build: ## Build the cuerator binary into bin/
	$(GO) build -o $(BIN) ./cmd/cuerator

generate: ## Regenerate deploy/crds from the CUE templates
	$(GO) run ./cmd/cuerator crds --output-dir deploy/crds

# The stock cue CLI at the version cuerator embeds: the corpus test checks
# that `cue vet` agrees with the CRDs and with `cuerator vet`.
CUE_VERSION := v0.17.1

cue-tool: ## Install the cue CLI into bin/cue
	GOBIN=$(abspath bin) $(GO) install cuelang.org/go/cmd/cue@$(CUE_VERSION)

install: ## Apply the CRDs to the cluster in KUBECONFIG
	kubectl apply --server-side -f deploy/crds/

uninstall: ## Delete the CRDs (and so every CR) from the cluster in KUBECONFIG
	kubectl delete --ignore-not-found -f deploy/crds/

run: build ## Run the operator in the foreground against KUBECONFIG (Ctrl-C stops it)
	$(BIN) run --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

test: cluster-tools cue-tool ## Run every test against a real local cluster
	$(GO) vet ./...
	$(GO) test ./... -count=1 -timeout 40m

demo: build ## The walking skeleton: cluster, CRDs, operator, examples
	bash examples/demo.sh

demo-stop: ## Stop the demo's operator and the local cluster
	bash examples/demo.sh stop

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
