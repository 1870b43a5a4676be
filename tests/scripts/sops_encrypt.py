#!/usr/bin/env python3
"""Writes a SOPS-encrypted file with age recipients, for the tests.

Debian has no `sops` binary, so the SOPS tests build their age-recipient files
here, independently of the engine's C++ (engine/src/sops.cc): the values are
encrypted with AES-256-GCM by python3-cryptography (32-byte IV, the value's key
path joined by ':' plus ':' as additional data), the MAC is SHA-512 over the
cleartext values in document order (as getsops/sops sops.go Tree.Encrypt and
ToBytes compute it), encrypted with the data key and sops.lastmodified as
additional data, and the 32-byte data key is wrapped by the REAL `age` tool
(`age -a -r RECIPIENT`), once per recipient, as sops stores it in sops.age.

usage: sops_encrypt.py --format yaml|json|dotenv --age-recipient age1... \
         [--age-recipient ...] [--unencrypted-suffix S | --encrypted-suffix S |
         --encrypted-regex R | --unencrypted-regex R] [--mac-only-encrypted]
         [--no-mac] PLAIN OUT
"""

import argparse
import base64
import datetime
import decimal
import hashlib
import json
import os
import re
import subprocess
import sys

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()


def literal_blocks(dumper, s):
    """Multi-line strings as YAML literal blocks, as sops writes sops.age[].enc."""
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


yaml.SafeDumper.add_representer(str, literal_blocks)


def go_float(f):
    """strconv.FormatFloat(f, 'f', -1, 64)."""
    s = format(decimal.Decimal(repr(f)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def to_bytes(v):
    """sops.go ToBytes."""
    if isinstance(v, bool):
        return b"True" if v else b"False"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, float):
        return go_float(v).encode()
    return v.encode()


def type_name(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "str"


def b64(b):
    return base64.b64encode(b).decode()


def encrypt_value(key, v, aad):
    if v == "":
        return ""
    iv = os.urandom(32)
    out = AESGCM(key).encrypt(iv, to_bytes(v), aad.encode())
    return "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]" % (
        b64(out[:-16]), b64(iv), b64(out[-16:]), type_name(v))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--format", required=True, choices=["yaml", "json", "dotenv"])
    p.add_argument("--age-recipient", action="append", default=[])
    p.add_argument("--unencrypted-suffix")
    p.add_argument("--encrypted-suffix")
    p.add_argument("--encrypted-regex")
    p.add_argument("--unencrypted-regex")
    p.add_argument("--mac-only-encrypted", action="store_true")
    p.add_argument("--no-mac", action="store_true")
    p.add_argument("plain")
    p.add_argument("out")
    a = p.parse_args()

    text = open(a.plain, encoding="utf-8").read()
    if a.format == "yaml":
        doc = yaml.safe_load(text)
    elif a.format == "json":
        doc = json.loads(text)
    else:
        doc = {}
        for line in text.split("\n"):
            if not line or line.startswith("#"):
                continue
            k, v = line.split("=", 1)
            doc[k] = v.replace("\\n", "\n")

    rules = {}
    if a.unencrypted_suffix:
        rules["unencrypted_suffix"] = a.unencrypted_suffix
    if a.encrypted_suffix:
        rules["encrypted_suffix"] = a.encrypted_suffix
    if a.encrypted_regex:
        rules["encrypted_regex"] = a.encrypted_regex
    if a.unencrypted_regex:
        rules["unencrypted_regex"] = a.unencrypted_regex
    if not rules:
        rules["unencrypted_suffix"] = "_unencrypted"

    def should_encrypt(path):  # sops.go shouldBeEncrypted
        enc = True
        if "unencrypted_suffix" in rules and any(
                k.endswith(rules["unencrypted_suffix"]) for k in path):
            enc = False
        if "encrypted_suffix" in rules:
            enc = any(k.endswith(rules["encrypted_suffix"]) for k in path)
        if "unencrypted_regex" in rules and any(
                re.search(rules["unencrypted_regex"], k) for k in path):
            enc = False
        if "encrypted_regex" in rules:
            enc = any(re.search(rules["encrypted_regex"], k) for k in path)
        return enc

    key = os.urandom(32)
    h = hashlib.sha512()
    if a.mac_only_encrypted:
        h.update(MAC_ONLY_ENCRYPTED_INIT)

    def walk(node, path):
        if isinstance(node, dict):
            return {k: walk(v, path + [k]) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if node is None:
            return None
        enc = should_encrypt(path)
        if not a.mac_only_encrypted or enc:
            h.update(to_bytes(node))
        return encrypt_value(key, node, ":".join(path) + ":") if enc else node

    out = walk(doc, [])
    lastmodified = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ages = []
    for r in a.age_recipient:
        env = subprocess.run(["age", "-a", "-r", r], input=key, capture_output=True, check=True)
        ages.append({"recipient": r, "enc": env.stdout.decode()})
    meta = {"age": ages, "lastmodified": lastmodified}
    if not a.no_mac:
        meta["mac"] = encrypt_value(key, h.hexdigest().upper(), lastmodified)
    meta.update(rules)
    if a.mac_only_encrypted:
        meta["mac_only_encrypted"] = True
    meta["version"] = "3.9.0"

    with open(a.out, "w", encoding="utf-8") as f:
        if a.format == "yaml":
            out["sops"] = meta
            yaml.safe_dump(out, f, sort_keys=False, default_flow_style=False)
        elif a.format == "json":
            out["sops"] = meta
            json.dump(out, f, indent=4)
        else:
            for k, v in out.items():
                f.write("%s=%s\n" % (k, str(v).replace("\n", "\\n")))
            flat = {}
            for i, age in enumerate(ages):
                flat["age__list_%d__map_enc" % i] = age["enc"]
                flat["age__list_%d__map_recipient" % i] = age["recipient"]
            for k, v in meta.items():
                if k != "age":
                    flat[k] = "true" if v is True else v
            for k in sorted(flat):
                f.write("sops_%s=%s\n" % (k, flat[k].replace("\n", "\\n")))


if __name__ == "__main__":
    sys.exit(main())
