#include "age_file.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <optional>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

namespace reconcile {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::string_view kVersionLine = "age-encryption.org/v1";
constexpr std::string_view kArmorBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr std::string_view kArmorEnd = "-----END AGE ENCRYPTED FILE-----";
constexpr std::string_view kX25519Label = "age-encryption.org/v1/X25519";
constexpr std::size_t kChunkSize = 64 * 1024;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kFileKeySize = 16;

// Wipes a buffer when it goes out of scope.
struct Wipe {
  void* p;
  std::size_t n;
  ~Wipe() { OPENSSL_cleanse(p, n); }
};

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard alphabet. `padded`: the input carries '=' padding to a multiple of
// four (armor); otherwise it must have none (age's header encoding). Rejects
// non-canonical trailing bits.
std::optional<Bytes> DecodeBase64(std::string_view in, bool padded) {
  if (padded) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
    in.remove_suffix(pad);
  }
  if (in.size() % 4 == 1) return std::nullopt;
  Bytes out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64Value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

// --- Bech32 (BIP 173), as age uses it (no length limit) ---

constexpr std::string_view kBech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

std::uint32_t Bech32Polymod(const std::vector<std::uint8_t>& values) {
  constexpr std::uint32_t kGen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  std::uint32_t chk = 1;
  for (std::uint8_t v : values) {
    std::uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; ++i) {
      if ((top >> i) & 1) chk ^= kGen[i];
    }
  }
  return chk;
}

std::vector<std::uint8_t> HrpExpand(std::string_view hrp) {
  std::vector<std::uint8_t> out;
  for (char c : hrp) out.push_back(static_cast<std::uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<std::uint8_t>(c) & 31);
  return out;
}

std::string Bech32Encode(std::string_view hrp, const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> five;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      five.push_back((acc >> bits) & 31);
    }
  }
  if (bits > 0) five.push_back((acc << (5 - bits)) & 31);
  std::vector<std::uint8_t> values = HrpExpand(hrp);
  values.insert(values.end(), five.begin(), five.end());
  values.insert(values.end(), 6, 0);
  std::uint32_t mod = Bech32Polymod(values) ^ 1;
  std::string out(hrp);
  out += '1';
  for (std::uint8_t v : five) out += kBech32Charset[v];
  for (int i = 0; i < 6; ++i) out += kBech32Charset[(mod >> (5 * (5 - i))) & 31];
  return out;
}

// --- OpenSSL helpers ---

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct KdfFree {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};

std::optional<std::array<std::uint8_t, 32>> X25519Public(const std::uint8_t* scalar) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, scalar, 32));
  if (!key) return std::nullopt;
  std::array<std::uint8_t, 32> out{};
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), out.data(), &len) != 1 || len != 32) {
    return std::nullopt;
  }
  return out;
}

// X25519(scalar, point); nullopt on failure or an all-zero shared secret.
std::optional<std::array<std::uint8_t, 32>> X25519(const std::uint8_t* scalar,
                                                   const std::uint8_t* point) {
  std::unique_ptr<EVP_PKEY, PkeyFree> priv(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, scalar, 32));
  std::unique_ptr<EVP_PKEY, PkeyFree> peer(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, point, 32));
  if (!priv || !peer) return std::nullopt;
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(priv.get(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1) {
    return std::nullopt;
  }
  std::array<std::uint8_t, 32> out{};
  std::size_t len = out.size();
  if (EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1 || len != 32) return std::nullopt;
  std::uint8_t any = 0;
  for (std::uint8_t b : out) any |= b;
  if (any == 0) return std::nullopt;
  return out;
}

bool Hkdf(const std::uint8_t* ikm, std::size_t ikm_len, const std::uint8_t* salt,
          std::size_t salt_len, std::string_view info, std::uint8_t* out, std::size_t out_len) {
  std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return false;
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return false;
  char digest[] = "SHA256";
  static std::uint8_t empty = 0;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm),
                                        ikm_len),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_SALT, salt_len ? const_cast<std::uint8_t*>(salt) : &empty, salt_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  return EVP_KDF_derive(ctx.get(), out, out_len, params) == 1;
}

// ChaCha20-Poly1305 open: `in` is ciphertext || 16-byte tag.
bool ChaChaOpen(const std::uint8_t* key, const std::uint8_t* nonce12, const std::uint8_t* in,
                std::size_t in_len, std::uint8_t* out) {
  if (in_len < kTagSize) return false;
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return false;
  std::size_t len = in_len - kTagSize;
  int outl = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_chacha20_poly1305(), nullptr, key, nonce12) != 1) {
    return false;
  }
  if (len > 0 && EVP_DecryptUpdate(ctx.get(), out, &outl, in, static_cast<int>(len)) != 1) {
    return false;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize),
                          const_cast<std::uint8_t*>(in + len)) != 1) {
    return false;
  }
  int fin = 0;
  return EVP_DecryptFinal_ex(ctx.get(), out + outl, &fin) == 1;
}

// --- header ---

struct Stanza {
  std::vector<std::string> args;  // args[0] is the type
  Bytes body;
};

struct Header {
  std::vector<Stanza> stanzas;
  std::string_view mac_input;  // from the version line up to and including "---"
  Bytes mac;
  std::string_view payload;
};

Status Malformed(const std::string& what) {
  return Status::Invalid("not a valid age file: " + what);
}

// Takes the next line (without '\n') off `in`; nullopt when there is no '\n'.
std::optional<std::string_view> NextLine(std::string_view& in) {
  std::size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl + 1);
  return line;
}

std::vector<std::string> SplitSpaces(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t sp = s.find(' ', start);
    if (sp == std::string_view::npos) sp = s.size();
    out.emplace_back(s.substr(start, sp - start));
    start = sp + 1;
  }
  return out;
}

Result<Header> ParseHeader(std::string_view file) {
  Header h;
  std::string_view rest = file;
  auto version = NextLine(rest);
  if (!version || *version != kVersionLine) {
    return Malformed("the first line is not \"age-encryption.org/v1\"");
  }
  while (true) {
    std::string_view before = rest;
    auto line = NextLine(rest);
    if (!line) return Malformed("the header ends before its \"---\" line");
    if (line->starts_with("---")) {
      if (!line->starts_with("--- ")) return Malformed("the \"---\" line has no MAC");
      std::size_t consumed = static_cast<std::size_t>(before.data() - file.data());
      h.mac_input = file.substr(0, consumed + 3);
      auto mac = DecodeBase64(line->substr(4), false);
      if (!mac || mac->size() != 32) return Malformed("the header MAC is not 32 bytes of base64");
      h.mac = std::move(*mac);
      h.payload = rest;
      return h;
    }
    if (!line->starts_with("-> "))
      return Malformed("a header line is neither a stanza nor \"---\"");
    Stanza s;
    s.args = SplitSpaces(line->substr(3));
    for (const auto& a : s.args) {
      if (a.empty()) return Malformed("a stanza has an empty argument");
    }
    std::string body_b64;
    while (true) {
      auto body_line = NextLine(rest);
      if (!body_line) return Malformed("a stanza body is not terminated");
      if (body_line->size() > 64) return Malformed("a stanza body line is longer than 64 columns");
      body_b64 += *body_line;
      if (body_line->size() < 64) break;
    }
    auto body = DecodeBase64(body_b64, false);
    if (!body) return Malformed("a stanza body is not valid base64");
    s.body = std::move(*body);
    h.stanzas.push_back(std::move(s));
  }
}

// Strips the ASCII armor; returns the binary file.
Result<std::string> Dearmor(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  // The two lines must not share their dashes ("...FILE-----END AGE...").
  if (text.size() < kArmorBegin.size() + kArmorEnd.size() || !text.starts_with(kArmorBegin) ||
      !text.ends_with(kArmorEnd)) {
    return Malformed("the armor has no BEGIN/END lines");
  }
  text.remove_prefix(kArmorBegin.size());
  text.remove_suffix(kArmorEnd.size());
  std::string b64;
  for (char c : text) {
    if (is_space(c)) continue;
    b64 += c;
  }
  auto bin = DecodeBase64(b64, true);
  if (!bin) return Malformed("the armored body is not valid base64");
  return std::string(bin->begin(), bin->end());
}

// Unwraps the file key from an X25519 stanza with `identity`; nullopt when
// the stanza is not for it.
std::optional<std::array<std::uint8_t, kFileKeySize>> UnwrapX25519(const Stanza& s,
                                                                   const AgeIdentity& identity) {
  auto share = DecodeBase64(s.args[1], false);
  if (!share || share->size() != 32 || s.body.size() != kFileKeySize + kTagSize) {
    return std::nullopt;
  }
  auto shared = X25519(identity.scalar().data(), share->data());
  auto recipient = X25519Public(identity.scalar().data());
  if (!shared || !recipient) return std::nullopt;
  Wipe wipe_shared{shared->data(), shared->size()};
  std::uint8_t salt[64];
  std::memcpy(salt, share->data(), 32);
  std::memcpy(salt + 32, recipient->data(), 32);
  std::uint8_t wrap_key[32];
  Wipe wipe_wrap{wrap_key, sizeof wrap_key};
  if (!Hkdf(shared->data(), shared->size(), salt, sizeof salt, kX25519Label, wrap_key, 32)) {
    return std::nullopt;
  }
  std::uint8_t nonce[12] = {};
  std::array<std::uint8_t, kFileKeySize> file_key{};
  if (!ChaChaOpen(wrap_key, nonce, s.body.data(), s.body.size(), file_key.data())) {
    OPENSSL_cleanse(file_key.data(), file_key.size());
    return std::nullopt;
  }
  return file_key;
}

Result<std::string> DecryptPayload(std::string_view payload, const std::uint8_t* file_key) {
  if (payload.size() < 16) return Malformed("the payload has no nonce");
  const auto* nonce = reinterpret_cast<const std::uint8_t*>(payload.data());
  std::uint8_t key[32];
  Wipe wipe_key{key, sizeof key};
  if (!Hkdf(file_key, kFileKeySize, nonce, 16, "payload", key, sizeof key)) {
    return Status::Internal("age: HKDF failed");
  }
  std::string_view rest = payload.substr(16);
  if (rest.empty()) return Malformed("the payload is truncated (no chunk)");
  std::string out;
  out.reserve(rest.size());
  std::uint64_t counter = 0;
  const std::size_t enc_chunk = kChunkSize + kTagSize;
  while (!rest.empty()) {
    bool last = rest.size() <= enc_chunk;
    std::size_t n = last ? rest.size() : enc_chunk;
    if (n < kTagSize)
      return Malformed("the payload is truncated (a chunk is shorter than its tag)");
    if (last && n == kTagSize && counter > 0) {
      return Malformed("the payload ends with an empty chunk");
    }
    std::uint8_t chunk_nonce[12] = {};
    for (int i = 0; i < 8; ++i) chunk_nonce[10 - i] = static_cast<std::uint8_t>(counter >> (8 * i));
    chunk_nonce[11] = last ? 1 : 0;
    std::size_t at = out.size();
    out.resize(at + n - kTagSize);
    if (!ChaChaOpen(key, chunk_nonce, reinterpret_cast<const std::uint8_t*>(rest.data()), n,
                    reinterpret_cast<std::uint8_t*>(out.data()) + at)) {
      OPENSSL_cleanse(out.data(), out.size());
      return Status::Invalid("age file: payload chunk " + std::to_string(counter) +
                             " does not authenticate (the file was changed or truncated)");
    }
    rest.remove_prefix(n);
    ++counter;
  }
  return out;
}

}  // namespace

AgeIdentity::~AgeIdentity() { OPENSSL_cleanse(scalar_.data(), scalar_.size()); }

Result<AgeIdentity> AgeIdentity::Parse(std::string_view text) {
  constexpr std::string_view kHrp = "age-secret-key-";
  bool has_lower = false, has_upper = false;
  std::string lower;
  lower.reserve(text.size());
  for (char c : text) {
    if (c >= 'a' && c <= 'z') has_lower = true;
    if (c >= 'A' && c <= 'Z') has_upper = true;
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  Wipe wipe_lower{lower.data(), lower.size()};
  if (has_lower && has_upper) return Status::Invalid("age identity: mixed case");
  if (!lower.starts_with(kHrp) || lower.size() < kHrp.size() + 1 + 6 || lower[kHrp.size()] != '1') {
    return Status::Invalid("age identity: does not start with AGE-SECRET-KEY-1");
  }
  // The HRP is everything before the last '1'.
  std::size_t sep = lower.rfind('1');
  std::string_view hrp(lower.data(), sep);
  if (hrp != kHrp) return Status::Invalid("age identity: does not start with AGE-SECRET-KEY-1");
  std::vector<std::uint8_t> values = HrpExpand(hrp);
  std::vector<std::uint8_t> data;
  for (std::size_t i = sep + 1; i < lower.size(); ++i) {
    std::size_t v = kBech32Charset.find(lower[i]);
    if (v == std::string_view::npos) return Status::Invalid("age identity: not Bech32");
    data.push_back(static_cast<std::uint8_t>(v));
  }
  values.insert(values.end(), data.begin(), data.end());
  if (Bech32Polymod(values) != 1) return Status::Invalid("age identity: bad Bech32 checksum");
  data.resize(data.size() - 6);
  AgeIdentity id;
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t n = 0;
  for (std::uint8_t v : data) {
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      if (n >= 32) return Status::Invalid("age identity: not 32 bytes");
      id.scalar_[n++] = static_cast<std::uint8_t>((acc >> bits) & 0xff);
    }
  }
  OPENSSL_cleanse(data.data(), data.size());
  OPENSSL_cleanse(values.data(), values.size());
  if (n != 32 || bits >= 5) return Status::Invalid("age identity: not 32 bytes");
  return id;
}

std::string AgeIdentity::Recipient() const {
  auto pub = X25519Public(scalar_.data());
  if (!pub) return "";
  return Bech32Encode("age", pub->data(), pub->size());
}

Result<std::vector<AgeIdentity>> ParseAgeIdentities(std::string_view text,
                                                    std::string_view source) {
  std::vector<AgeIdentity> out;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto id = AgeIdentity::Parse(line);
    if (!id.ok()) {
      return Status::Invalid(std::string(source) + ":" + std::to_string(line_no) + ": " +
                             id.status().message());
    }
    out.push_back(std::move(id).value());
  }
  if (out.empty()) {
    return Status::Invalid(std::string(source) + ": no AGE-SECRET-KEY-1 identity in the file");
  }
  return out;
}

Result<std::string> DecryptAge(std::string_view file, const std::vector<AgeIdentity>& identities) {
  std::string dearmored;
  std::string_view bin = file;
  std::string_view probe = file;
  while (!probe.empty() && std::isspace(static_cast<unsigned char>(probe.front()))) {
    probe.remove_prefix(1);
  }
  if (probe.starts_with(kArmorBegin)) {
    auto d = Dearmor(file);
    if (!d.ok()) return d.status();
    dearmored = std::move(d).value();
    bin = dearmored;
  }
  auto header = ParseHeader(bin);
  if (!header.ok()) return header.status();
  bool any_x25519 = false;
  for (const Stanza& s : header->stanzas) {
    if (s.args[0] == "scrypt") {
      return Status::Invalid("age file: passphrase (scrypt) recipients are not supported");
    }
  }
  for (const Stanza& s : header->stanzas) {
    if (s.args[0] != "X25519") continue;
    any_x25519 = true;
    if (s.args.size() != 2) return Malformed("an X25519 stanza does not have one argument");
    for (const AgeIdentity& id : identities) {
      auto file_key = UnwrapX25519(s, id);
      if (!file_key) continue;
      Wipe wipe_fk{file_key->data(), file_key->size()};
      std::uint8_t hmac_key[32];
      Wipe wipe_hk{hmac_key, sizeof hmac_key};
      if (!Hkdf(file_key->data(), file_key->size(), nullptr, 0, "header", hmac_key, 32)) {
        return Status::Internal("age: HKDF failed");
      }
      std::uint8_t mac[32];
      unsigned int mac_len = 0;
      if (HMAC(EVP_sha256(), hmac_key, 32,
               reinterpret_cast<const unsigned char*>(header->mac_input.data()),
               header->mac_input.size(), mac, &mac_len) == nullptr ||
          mac_len != 32) {
        return Status::Internal("age: HMAC failed");
      }
      if (CRYPTO_memcmp(mac, header->mac.data(), 32) != 0) {
        return Status::Invalid("age file: the header MAC does not match (the header was changed)");
      }
      return DecryptPayload(header->payload, file_key->data());
    }
  }
  if (!any_x25519) {
    return Status::NotFound(
        "age file: no X25519 recipient stanza (only " +
        (header->stanzas.empty() ? std::string("none") : header->stanzas.front().args[0]) + ")");
  }
  return Status::NotFound("age file: none of the " + std::to_string(identities.size()) +
                          " age identities is a recipient");
}

}  // namespace reconcile
