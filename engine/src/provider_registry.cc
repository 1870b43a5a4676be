#include "reconcile/provider.h"

namespace reconcile {

void ProviderRegistry::Register(const std::string& provider_name, ProviderFactory factory) {
  factories_[provider_name] = std::move(factory);
}

bool ProviderRegistry::Has(const std::string& provider_name) const {
  return factories_.count(provider_name) > 0;
}

Result<std::unique_ptr<Provider>> ProviderRegistry::Create(const Target& target) const {
  auto it = factories_.find(target.provider);
  if (it == factories_.end()) {
    std::string known;
    for (const auto& [name, f] : factories_) known += (known.empty() ? "" : ", ") + name;
    return Status::NotFound("target '" + target.name + "': provider '" + target.provider +
                            "' is not available in this build (available: " + known + ")");
  }
  return it->second(target);
}

}  // namespace reconcile
