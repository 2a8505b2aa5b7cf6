#!/usr/bin/env bash
# Install the servers the tests and the native fleet use, and the C/C++ toolchain that builds
# llama-cpp-python (sdist only on PyPI), from Debian's packages, when missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# OCR's tesseract engine: the binary and the language packs the OCR image installs
# (services/ocr_detection/Dockerfile.cpu TESSERACT_LANGS)
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
for lang in eng fra deu spa ita por nld rus chi-sim jpn kor ara hin tha; do
  [ -f "/usr/share/tesseract-ocr/5/tessdata/${lang//-/_}.traineddata" ] || need+=("tesseract-ocr-$lang")
done
# the fingerprint task's sound fingerprint (services/media_metadata/Dockerfile.cpu installs it too)
command -v fpcalc >/dev/null 2>&1 || need+=(libchromaprint-tools)
# the diarization tests and bench/asr synthesise two-voice dialogues
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# promtool (Debian's prometheus package): the alert rules' unit tests and the dashboards' queries
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# the shell scripts' lint (tests/test_bootstrap.py)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -eq 0 ]; then
  echo "system deps present: redis-server, postgresql, cmake, g++, make, tesseract-ocr and its language packs, fpcalc, espeak-ng, promtool, shellcheck"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${need[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# Debian starts the packaged services on install where an init system runs; the
# tests never use them (each test session starts its own on a free port).
# Prometheus is installed for promtool only: its packaged server would take port 9090, which
# the monitoring profile publishes
if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
