// Per-Node-instance state (instance.h), kept as the instance data of the env.
#include "instance.h"

namespace lanparty {

void Instance::Create(Napi::Env env) {
  if (env.GetInstanceData<std::shared_ptr<Instance>>() != nullptr) return;
  env.SetInstanceData(new std::shared_ptr<Instance>(std::make_shared<Instance>()));
}

std::shared_ptr<Instance> Instance::Of(Napi::Env env) {
  std::shared_ptr<Instance>* p = env.GetInstanceData<std::shared_ptr<Instance>>();
  if (p == nullptr) {
    Create(env);
    p = env.GetInstanceData<std::shared_ptr<Instance>>();
  }
  return *p;
}

}  // namespace lanparty
