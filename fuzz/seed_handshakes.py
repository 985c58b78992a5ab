#!/usr/bin/env python3
"""Writes the seed corpus of the agent_handshake fuzz target: agent handshakes (docs/protocol/agent.md
§3.4) as `[u16 length][frame]` sequences, signed by a throwaway RSA-2048 agent key made with
the openssl command (nothing of the key is kept), over the target's fixed server nonce and
TLS hash. Run it again only when the target's constants or framing change.

    fuzz/seed_handshakes.py            # writes fuzz/corpus/agent_handshake/
"""

import os
import struct
import subprocess
import sys
import tempfile

# As in fuzz_targets/agent_handshake.rs.
SERVER_NONCE = b"\x53" * 48
TLS_CERT_HASH = b"\xc3" * 48
TLS_KEY_HASH = b"\x4b" * 48
AGENT_NONCE = bytes(range(0xA0, 0xA0 + 48))


def cmd(number, payload=b""):
    return struct.pack(">H", number) + payload


def auth_request(tls_hash=TLS_CERT_HASH, nonce=AGENT_NONCE):
    return cmd(1, tls_hash + nonce)


def auth_verify(cert, signature):
    return cmd(2, struct.pack(">H", len(cert)) + cert + signature)


def auth_info(host=b"vm", mesh_id=b"\xee" * 48, platform=1, caps=0x118):
    fields = struct.pack(">IIII", 1, 6, 0, platform)
    return cmd(3, fields + mesh_id + struct.pack(">IH", caps, len(host)) + host)


def framed(*frames):
    return b"".join(struct.pack(">H", len(f)) + f for f in frames)


def agent_key(tmp):
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.der")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-outform", "DER", "-out", cert, "-subj", "/CN=MeshNodeCertificate", "-days", "36500"],
        check=True, capture_output=True)
    with open(cert, "rb") as f:
        return key, f.read()


def sign(key, tls_hash, tmp):
    """The agent's signature: RSA PKCS#1 v1.5, SHA-384, over H ‖ serverNonce ‖ agentNonce."""
    message = os.path.join(tmp, "message")
    with open(message, "wb") as f:
        f.write(tls_hash + SERVER_NONCE + AGENT_NONCE)
    return subprocess.run(["openssl", "dgst", "-sha384", "-sign", key, message],
                          check=True, capture_output=True).stdout


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "agent_handshake")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = agent_key(tmp)
        verify = auth_verify(cert, sign(key, TLS_CERT_HASH, tmp))
        verify_by_key = auth_verify(cert, sign(key, TLS_KEY_HASH, tmp))
    commit_date = cmd(30, b"2022-Nov-2 23:01:45-0700\0")
    host_info = cmd(31, b"Debian GNU/Linux 12 (bookworm) - x64")
    server_id = cmd(5, b"\xb5" * 48)
    name = b'{"action":"agentName","value":"lab-pi"}'
    bad_signature = bytearray(verify)
    bad_signature[-1] ^= 1
    seeds = {
        # First connection: 30, 31, 5, 1, then 2 and 3.
        "new-agent": framed(commit_date, host_info, server_id, auth_request(), verify,
                            name, auth_info()),
        # Later connection: 4 before 1, cmd 3 right away, cmd 2 last.
        "skip-path": framed(commit_date, host_info, server_id, cmd(4),
                            auth_request(TLS_KEY_HASH), auth_info(b"pi", platform=7),
                            verify_by_key),
        # Cmd 2 before cmd 1: kept until the agent nonce is known. Legacy 32-byte mesh id.
        "verify-first": framed(verify, auth_request(),
                               auth_info(b"old", mesh_id=b"\x11" * 32 + b"\0" * 16)),
        "bad-signature": framed(auth_request(), bytes(bad_signature), auth_info()),
        "wrong-tls-hash": framed(auth_request(b"\x77" * 48)),
        "repeated-request": framed(auth_request(), auth_request()),
        "truncated-info": framed(auth_request(), auth_info()[:73]),
        "early-core-hash": framed(cmd(11, b"\0\0" + b"\x42" * 48)),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
