# hitless: every target installs what it needs on a fresh Debian 12 machine (as root),
# and is quick when everything is already there.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEB_PACKAGES := openvswitch-switch openvswitch-common iproute2 ethtool iputils-ping \
                iperf3 procps
# The ebpf datapath: its BPF C program is compiled here at set-up (never committed).
DEB_PACKAGES += clang llvm libbpf-dev bpftool
# bench/datapath.py's 64-byte generator (trafgen).
DEB_PACKAGES += netsniff-ng
# tests/openflow/test_ovn_controller.py: OVN's ovn-controller (OpenFlow 1.5 only) against a
# hitless bridge; ovn-central ships the southbound schema it needs.
DEB_PACKAGES += ovn-host ovn-central
# make deb: Debian's venv for the package's own environment, systemd-analyze to verify
# the unit (dpkg-deb is part of dpkg).
DEB_PACKAGES += python3-venv systemd
STAMP_DEB  := $(VENV)/.deb-installed
STAMP_VENV := $(VENV)/.venv-installed

.PHONY: setup demo blips test lint typecheck unit bench clean bpf deb fuzz soak

setup: $(STAMP_DEB) $(STAMP_VENV) bpf

# Compiles the ebpf datapath's program into its cache (a no-op when it is there).
bpf: $(STAMP_DEB) $(STAMP_VENV)
	@$(PY) -m hitless.datapath.ebpf.build >/dev/null

$(STAMP_DEB): Makefile
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: run as root to install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

$(STAMP_VENV): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: setup
	$(VENV)/bin/ruff check hitless tests bench

typecheck: setup
	$(VENV)/bin/mypy hitless

unit: setup
	$(VENV)/bin/pytest -q -m "not netns"

test: setup lint typecheck
	$(VENV)/bin/pytest -q

# Hostile input for longer than make test's fixed budget: the live fuzzers send
# FUZZ_EXAMPLES inputs per test to a running switch; the corpus and unit fuzzers run too.
FUZZ_EXAMPLES ?= 2000
fuzz: setup
	HITLESS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -q -p no:randomly tests/fuzz \
		tests/openflow/test_fuzz.py tests/handoff/test_protocol.py

# A long run under churn (bench/soak.py): SOAK_MINUTES of traffic, port, MAC and flow
# churn and an upgrade every 30 s; memory and descriptors sampled.
SOAK_MINUTES ?= 10
soak: setup
	$(VENV)/bin/python bench/soak.py --minutes $(SOAK_MINUTES)

# make demo DATAPATH=ebpf: the same comparison with hitless on the ebpf datapath (Open
# vSwitch stays on netdev); its downgrade goes to EBPF_DOWNGRADE_TO, a build that has the
# ebpf datapath (the builds in tests/upgrade/previous_versions.txt predate it).
DATAPATH ?= netdev
EBPF_DOWNGRADE_TO ?= 3cd53f8
demo: setup
	$(VENV)/bin/hitless impact --demo --datapath $(DATAPATH) $(if $(filter ebpf,$(DATAPATH)),--downgrade-to $(EBPF_DOWNGRADE_TO))

# docs/blips.md is generated from a real run of the demo, never edited by hand.
blips: setup
	$(VENV)/bin/hitless impact --demo --blips docs/blips.md

bench: setup
	$(PY) bench/datapath.py

# The Debian package of the working tree (packaging/build_deb.py; docs/upgrading.md).
deb: setup
	$(PY) packaging/build_deb.py --out out

clean:
	rm -rf $(VENV) build *.egg-info
