// SecretStore: where secret references that are not files or environment
// variables are resolved (AWS Secrets Manager, Vault / OpenBao KV v2; a SOPS
// file of the tree next). The engine sees only this interface; the clients
// live in providers/secretstores and are wired by the program, so that the
// engine links no HTTP client and tests pass fakes.
//
// A store is asked for one reference at a time, at plan and apply time
// (never at load). Values are returned to the caller only: a store never
// logs them, never caches them on disk and never puts them (nor a token or
// credential) into a Status message.
//
// Thread-safety: Get may be called from several threads at once.
#pragma once

#include <map>
#include <stop_token>
#include <string>

#include "reconcile/model.h"
#include "reconcile/status.h"

namespace reconcile {

class SecretStore {
 public:
  virtual ~SecretStore() = default;
  // The value `ref` names (ref.source is this store's). Errors name the
  // reference (SecretRefText) and, for an HTTP store, the HTTP status and the
  // store's error name, never a value: kInvalid for what the operator or the
  // tree must fix (not found, a missing or deleted version, permission
  // denied, a key the secret does not have, no credentials), kUnavailable for
  // what may pass (sealed, throttled, unreachable), kCancelled when `stop`
  // was requested.
  virtual Result<std::string> Get(const SecretRef& ref, std::stop_token stop) = 0;
};

// The stores a program configured, by the source they serve; not owned. A
// reference whose source has no store here cannot be resolved (an error
// saying which flags configure it).
using SecretStores = std::map<SecretRef::Source, SecretStore*>;

}  // namespace reconcile
