#!/usr/bin/env bash
# Makes the SSHSIG test data of tests/unit/source/ssh_signature_test.cc with
# the real ssh-keygen (openssh-client): one key per supported type, a
# message, and `ssh-keygen -Y sign -n git` signatures of it, as git does for
# gpg.format=ssh. Run once (the outputs are committed); rerunning makes new
# keys, so the tests' expected fingerprints come from the .pub files.
# The private keys are deleted at the end: only public keys and signatures
# are kept.
set -euo pipefail
cd "$(dirname "$0")"
rm -f ./*_key ./*_key.pub ./*.sig message.txt allowed_signers fingerprints.txt
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor t <t@example.com> 1700000000 +0000\ncommitter t <t@example.com> 1700000000 +0000\n\nsigned for the unit tests\n' >message.txt
for spec in "ed25519 ed25519" "rsa rsa -b 2048" "ecdsa ecdsa -b 256" "ecdsa384 ecdsa -b 384" "ecdsa521 ecdsa -b 521"; do
  set -- $spec
  name=$1; shift
  ssh-keygen -q -t "$@" -N '' -C "$name@example.com" -f "${name}_key"
  ssh-keygen -q -Y sign -n git -f "${name}_key" message.txt   # writes message.txt.sig
  mv message.txt.sig "$name.sig"
done
# H(message) with SHA-256 instead of the default SHA-512 (the RSA signature
# itself stays rsa-sha2-512).
ssh-keygen -q -Y sign -n git -O hashalg=sha256 -f rsa_key message.txt && mv message.txt.sig rsa_sha256.sig
# A signature in another namespace than git's.
ssh-keygen -q -Y sign -n file -f ed25519_key message.txt && mv message.txt.sig ed25519_file_ns.sig
for name in ed25519 rsa ecdsa ecdsa384; do
  echo "$name@example.com namespaces=\"git\" $(cut -d' ' -f1,2 "${name}_key.pub")" >>allowed_signers
done
# Cross-check: ssh-keygen itself accepts every signature made above.
for name in ed25519 rsa ecdsa ecdsa384; do
  ssh-keygen -q -Y verify -f allowed_signers -I "$name@example.com" -n git -s "$name.sig" <message.txt >/dev/null
done
# ssh-keygen's own fingerprints, for SshFingerprint.
for name in ed25519 rsa ecdsa ecdsa384 ecdsa521; do
  echo "$name $(ssh-keygen -lf "${name}_key.pub" | cut -d' ' -f2)"
done >fingerprints.txt
rm -f ./*_key
