// Internal: the two compiled variants of the decoder's JSON walk (see decoder_impl.inc).
#pragma once

#include <memory>

#include "detectors/decoder.h"

namespace portalwatch {

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  virtual DecodeResult decode(std::string_view msg, bool padded, Event& ev) noexcept = 0;
};

namespace decoder_haswell {
std::unique_ptr<DecoderBackend> make_backend(const FieldMap&, std::size_t, FieldSet, DecoderStats*,
                                             JsonReader = JsonReader::kFastPathFirst);
}
namespace decoder_generic {
std::unique_ptr<DecoderBackend> make_backend(const FieldMap&, std::size_t, FieldSet, DecoderStats*,
                                             JsonReader = JsonReader::kFastPathFirst);
}

}  // namespace portalwatch
