#!/bin/sh
# Install the Debian tools the integration tests drive (SIPp, tshark, SIPVicious,
# the OpenSSH client, iproute2's ss) when they are missing and we are root.
# Without root, or without apt-get, it says what is missing; the tests that need a
# missing tool skip themselves with that reason.
set -u
missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need sipp sip-tester
need tshark tshark
need svmap sipvicious
need ssh openssh-client
need ssh-keygen openssh-client
need ss iproute2
[ -z "$missing" ] && exit 0
pkgs=$(printf '%s\n' $missing | sort -u | tr '\n' ' ')
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: missing test tools ($pkgs); not root or no apt-get, so their tests will skip" >&2
    exit 0
fi
echo "installing test tools: $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null 2>&1 \
    || echo "warning: apt-get install $pkgs failed; their tests will skip" >&2
exit 0
