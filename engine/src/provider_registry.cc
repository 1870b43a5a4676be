#include "reconcile/provider.h"

namespace reconcile {

PlanChangeResponse Provider::PlanChange(const PlanChangeRequest& request) const {
  return PlanChangeFromSchema(Schema(), request);
}

void ProviderRegistry::Register(const std::string& provider_name, ProviderDefinition definition) {
  definitions_[provider_name] = std::move(definition);
}

void ProviderRegistry::Register(const std::string& provider_name, ProviderFactory factory) {
  Register(provider_name, ProviderDefinition{std::move(factory), nullptr, nullptr});
}

bool ProviderRegistry::Has(const std::string& provider_name) const {
  return definitions_.count(provider_name) > 0;
}

std::vector<std::string> ProviderRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, d] : definitions_) names.push_back(name);
  return names;
}

const ProviderDefinition* ProviderRegistry::Find(const std::string& provider_name) const {
  auto it = definitions_.find(provider_name);
  return it == definitions_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<Provider>> ProviderRegistry::Create(const Target& target) const {
  auto it = definitions_.find(target.provider);
  if (it == definitions_.end() || !it->second.create) {
    std::string known;
    for (const auto& [name, d] : definitions_) known += (known.empty() ? "" : ", ") + name;
    return Status::NotFound("target '" + target.name + "': provider '" + target.provider +
                            "' is not available in this build (available: " + known + ")");
  }
  return it->second.create(target);
}

}  // namespace reconcile
