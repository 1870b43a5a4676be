// SSHSIG parsing and verification (PROTOCOL.sshsig, RFC 4253 wire types)
// over OpenSSL 3's EVP interface.
#include "source/ssh_signature.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

namespace reconcile {
namespace {

constexpr std::string_view kMagic = "SSHSIG";
constexpr std::string_view kBegin = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kEnd = "-----END SSH SIGNATURE-----";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;

// RFC 4251 section 5 reader: uint32 and length-prefixed strings.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool U32(std::uint32_t* v) {
    if (data_.size() < 4) return false;
    *v = (std::uint32_t{static_cast<unsigned char>(data_[0])} << 24) |
         (std::uint32_t{static_cast<unsigned char>(data_[1])} << 16) |
         (std::uint32_t{static_cast<unsigned char>(data_[2])} << 8) |
         std::uint32_t{static_cast<unsigned char>(data_[3])};
    data_.remove_prefix(4);
    return true;
  }
  bool String(std::string_view* s) {
    std::uint32_t n = 0;
    if (!U32(&n) || data_.size() < n) return false;
    *s = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool Raw(size_t n, std::string_view* s) {
    if (data_.size() < n) return false;
    *s = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

void PutString(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(s);
}

// A positive mpint (RFC 4251): big-endian two's complement.
BnPtr Mpint(std::string_view s) {
  if (!s.empty() && (static_cast<unsigned char>(s[0]) & 0x80) != 0) return nullptr;
  return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(s.data()),
                         static_cast<int>(s.size()), nullptr));
}

Status NotVerified() { return Status::Invalid("signature does not verify"); }

PkeyPtr FromData(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) return nullptr;
  return PkeyPtr(key);
}

// Verifies `sig` over `data` with `key`; `md` null for Ed25519.
Status DigestVerify(EVP_PKEY* key, const EVP_MD* md, std::string_view sig, std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) {
    return Status::Internal("OpenSSL: cannot set up the signature check");
  }
  int rc =
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return rc == 1 ? Status::Ok() : NotVerified();
}

Status VerifyEd25519(WireReader& key, std::string_view sig, std::string_view data) {
  std::string_view pk;
  if (!key.String(&pk) || !key.empty() || pk.size() != 32) {
    return Status::Invalid("malformed ssh-ed25519 public key");
  }
  if (sig.size() != 64) return NotVerified();
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(pk.data()), pk.size()));
  if (!pkey) return Status::Invalid("malformed ssh-ed25519 public key");
  return DigestVerify(pkey.get(), nullptr, sig, data);
}

Status VerifyRsa(WireReader& key, const std::string& alg, std::string_view sig,
                 std::string_view data) {
  const EVP_MD* md = alg == "rsa-sha2-256"   ? EVP_sha256()
                     : alg == "rsa-sha2-512" ? EVP_sha512()
                                             : nullptr;
  if (md == nullptr) {
    return Status::Invalid("RSA signature algorithm '" + alg +
                           "' is not accepted (rsa-sha2-256 or rsa-sha2-512)");
  }
  std::string_view e_bytes;
  std::string_view n_bytes;
  if (!key.String(&e_bytes) || !key.String(&n_bytes) || !key.empty()) {
    return Status::Invalid("malformed ssh-rsa public key");
  }
  BnPtr e = Mpint(e_bytes);
  BnPtr n = Mpint(n_bytes);
  if (!e || !n) return Status::Invalid("malformed ssh-rsa public key");
  const int bits = BN_num_bits(n.get());
  if (bits < 1024) return Status::Invalid("ssh-rsa key of " + std::to_string(bits) + " bits");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return Status::Internal("OpenSSL: cannot build an RSA key");
  }
  PkeyPtr pkey = FromData("RSA", bld.get());
  if (!pkey) return Status::Invalid("malformed ssh-rsa public key");
  // OpenSSH may drop leading zero bytes of the signature; OpenSSL wants the
  // modulus' length.
  const auto modulus = static_cast<size_t>((bits + 7) / 8);
  if (sig.size() > modulus) return NotVerified();
  std::string padded(modulus - sig.size(), '\0');
  padded.append(sig);
  return DigestVerify(pkey.get(), md, padded, data);
}

Status VerifyEcdsa(WireReader& key, const std::string& type, const std::string& alg,
                   std::string_view sig, std::string_view data) {
  struct Curve {
    const char* ssh;
    const char* openssl;
    const EVP_MD* (*md)();
  };
  static const Curve kCurves[] = {{"nistp256", "prime256v1", EVP_sha256},
                                  {"nistp384", "secp384r1", EVP_sha384},
                                  {"nistp521", "secp521r1", EVP_sha512}};
  std::string_view curve_name;
  std::string_view point;
  if (!key.String(&curve_name) || !key.String(&point) || !key.empty()) {
    return Status::Invalid("malformed " + type + " public key");
  }
  const Curve* curve = nullptr;
  for (const Curve& c : kCurves) {
    if (curve_name == c.ssh && type == std::string("ecdsa-sha2-") + c.ssh) curve = &c;
  }
  if (curve == nullptr) return Status::Invalid("unsupported ECDSA key " + type);
  if (alg != type) return Status::Invalid("signature algorithm " + alg + " for a key " + type);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->openssl, 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return Status::Internal("OpenSSL: cannot build an EC key");
  }
  PkeyPtr pkey = FromData("EC", bld.get());
  if (!pkey) return Status::Invalid("malformed " + type + " public key");
  // The SSH form (mpint r, mpint s) to DER.
  WireReader rs(sig);
  std::string_view r_bytes;
  std::string_view s_bytes;
  if (!rs.String(&r_bytes) || !rs.String(&s_bytes) || !rs.empty()) return NotVerified();
  BnPtr r = Mpint(r_bytes);
  BnPtr s = Mpint(s_bytes);
  EcdsaSigPtr ecdsa(ECDSA_SIG_new());
  if (!r || !s || !ecdsa) return NotVerified();
  if (ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) return NotVerified();
  (void)r.release();  // owned by ecdsa now
  (void)s.release();
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(ecdsa.get(), &der);
  if (der_len <= 0) return NotVerified();
  std::string der_sig(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return DigestVerify(pkey.get(), curve->md(), der_sig, data);
}

}  // namespace

bool DecodeBase64(std::string_view text, std::string* out) {
  out->clear();
  std::uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : text) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    if (c >= '0' && c <= '9') v = c - '0' + 52;
    if (c == '+') v = 62;
    if (c == '/') v = 63;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (v < 0 || pad > 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero and padding must complete a quantum.
  if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return false;
  if (pad > 2 || (pad > 0 && (text.size() % 4) != 0)) return false;
  return true;
}

std::string SshKeyType(std::string_view key_blob) {
  WireReader r(key_blob);
  std::string_view type;
  if (!r.String(&type)) return "";
  return std::string(type);
}

std::string SshFingerprint(std::string_view key_blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key_blob.data(), key_blob.size(), digest, &len, EVP_sha256(), nullptr);
  std::string b64(4 * ((len + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), digest, static_cast<int>(len));
  b64.resize(static_cast<size_t>(n));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

Result<SshSignature> ParseSshSignature(std::string_view armored) {
  auto begin = armored.find(kBegin);
  auto end = armored.find(kEnd);
  // The END line must follow the BEGIN line whole, not share its dashes.
  if (begin == std::string_view::npos || end == std::string_view::npos ||
      end < begin + kBegin.size()) {
    return Status::Invalid("not an SSH signature (no BEGIN/END SSH SIGNATURE armor)");
  }
  std::string base64;
  for (char c : armored.substr(begin + kBegin.size(), end - begin - kBegin.size())) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') base64.push_back(c);
  }
  std::string blob;
  if (!DecodeBase64(base64, &blob)) return Status::Invalid("SSH signature: bad base64");
  WireReader r(blob);
  std::string_view magic;
  std::uint32_t version = 0;
  if (!r.Raw(kMagic.size(), &magic) || magic != kMagic) {
    return Status::Invalid("SSH signature: no SSHSIG magic");
  }
  if (!r.U32(&version) || version != 1) {
    return Status::Invalid("SSH signature: unsupported version " + std::to_string(version));
  }
  std::string_view key, ns, reserved, hash, sig;
  if (!r.String(&key) || !r.String(&ns) || !r.String(&reserved) || !r.String(&hash) ||
      !r.String(&sig)) {
    return Status::Invalid("SSH signature: truncated");
  }
  if (!r.empty()) return Status::Invalid("SSH signature: trailing bytes");
  SshSignature out;
  out.public_key = std::string(key);
  out.key_type = SshKeyType(key);
  if (out.key_type.empty()) return Status::Invalid("SSH signature: malformed public key");
  out.sig_namespace = std::string(ns);
  out.reserved = std::string(reserved);
  out.hash_algorithm = std::string(hash);
  WireReader s(sig);
  std::string_view alg, bytes;
  if (!s.String(&alg) || !s.String(&bytes) || !s.empty()) {
    return Status::Invalid("SSH signature: malformed signature field");
  }
  out.signature_algorithm = std::string(alg);
  out.signature = std::string(bytes);
  return out;
}

Status VerifySshSignature(const SshSignature& sig, std::string_view message) {
  const EVP_MD* md = sig.hash_algorithm == "sha256"   ? EVP_sha256()
                     : sig.hash_algorithm == "sha512" ? EVP_sha512()
                                                      : nullptr;
  if (md == nullptr) {
    return Status::Invalid("SSH signature: unsupported hash algorithm '" + sig.hash_algorithm +
                           "'");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(message.data(), message.size(), digest, &len, md, nullptr) != 1) {
    return Status::Internal("OpenSSL: digest failed");
  }
  std::string signed_blob(kMagic);
  PutString(signed_blob, sig.sig_namespace);
  PutString(signed_blob, sig.reserved);
  PutString(signed_blob, sig.hash_algorithm);
  PutString(signed_blob, std::string_view(reinterpret_cast<const char*>(digest), len));

  WireReader key(sig.public_key);
  std::string_view type;
  if (!key.String(&type)) return Status::Invalid("SSH signature: malformed public key");
  if (type == "ssh-ed25519") {
    if (sig.signature_algorithm != "ssh-ed25519") {
      return Status::Invalid("signature algorithm " + sig.signature_algorithm +
                             " for an ssh-ed25519 key");
    }
    return VerifyEd25519(key, sig.signature, signed_blob);
  }
  if (type == "ssh-rsa") return VerifyRsa(key, sig.signature_algorithm, sig.signature, signed_blob);
  if (type.substr(0, 11) == "ecdsa-sha2-") {
    return VerifyEcdsa(key, std::string(type), sig.signature_algorithm, sig.signature, signed_blob);
  }
  return Status::Invalid("unsupported SSH key type " + std::string(type));
}

}  // namespace reconcile
