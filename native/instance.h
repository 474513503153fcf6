// The addon's state for one Node instance (the main thread, or one worker thread): everything
// that is not a socket's own lives here, never in a global, so workers that load the addon each
// get their own busy-poll loop and slab registry.
#pragma once

#include "busy_poll.h"
#include "rx_slabs.h"

#include <napi.h>

#include <memory>

namespace lanparty {

struct Instance {
  BusyPoll busy;
  RxSlabs slabs;

  // Makes this Node instance's state (module init calls it once per instance).
  static void Create(Napi::Env env);
  // This Node instance's state. Objects keep the pointer they got, so the state outlives every
  // object of the instance, whichever order Node tears them down in.
  static std::shared_ptr<Instance> Of(Napi::Env env);
};

}  // namespace lanparty
