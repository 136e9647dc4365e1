# The two set-up commands of the README.
.PHONY: demo test lint

demo:  ## install and run the whole product on embedded defaults
	scripts/bootstrap.sh dev
	scripts/build-web.sh
	@# Real SIESTA/TBtrans from ../shared/tools/siesta when present; the demo starts without it.
	scripts/services/siesta.sh || echo "SIESTA not installed: the demo runs without it (see scripts/services/siesta.sh)"
	@# As root, jobs run as the unprivileged account hpcgate-job (never beside the secrets).
	@if [ "$$(id -u)" = 0 ]; then scripts/services/job-accounts.sh --job-user-only; fi
	@# ...and call hpcgate validate from an install that account can run (our Python may sit
	@# in root's private home): /opt/hpcgate-cluster, which the demo then uses.
	@if [ "$$(id -u)" = 0 ]; then scripts/services/cluster-python.sh || echo "job-side hpcgate not installed: SIESTA demo steps may fail their validation (rc 126)"; fi
	.venv/bin/hpcgate demo

test:  ## install everything, start the real services, run the whole test suite
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/mypy hpcgate scheduler_adapters analyses ml
