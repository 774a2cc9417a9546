// The real wall clock. It lives in daemon/: the detectors library only sees the Clock interface.
#pragma once

#include <chrono>

#include "detectors/time.h"

namespace portalwatch {

class SystemClock final : public Clock {
 public:
  TimeMs now() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace portalwatch
