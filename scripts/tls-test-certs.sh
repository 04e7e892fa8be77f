#!/usr/bin/env bash
# tls-test-certs.sh DIR — a throwaway CA and server certificates for the TLS tests and benches.
#
# Writes into DIR (created if missing): ca.pem (the CA clients trust), server.pem + server.key
# (CN localhost, SAN localhost and 127.0.0.1, signed by the CA), other.pem + other.key (a second
# certificate from the same CA, CN keryx-reloaded: what a SIGHUP reload switches to). P-256 keys:
# fast to make, and the ECDHE-ECDSA suites are what the server offers first. Nothing here is
# ever a secret: the files live for one test run. 90 days and CRL/OCSP addresses (never served)
# so that testssl.sh (make testssl) judges the server's configuration, not the throwaway
# certificate's short life or missing revocation pointers.
set -euo pipefail

dir=${1:?usage: tls-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days 90 -subj "/CN=keryx test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem 2>/dev/null

issue() { # name CN
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        "crlDistributionPoints=URI:http://127.0.0.1:9/ca.crl" \
        "authorityInfoAccess=OCSP;URI:http://127.0.0.1:9/ocsp" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -sha256 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue server localhost
issue other keryx-reloaded
