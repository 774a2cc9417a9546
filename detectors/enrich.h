// Enrichment: filling in what a decoded event lacks from local reference data (a GeoIP database)
// before the engine looks at it. Only the interface lives here, so the engine stays free of I/O;
// the implementation over MaxMind-format files is daemon/geoip.h.
#pragma once

#include "detectors/event.h"

namespace portalwatch {

/// The fields an enricher may fill: position and place, and the network's AS.
inline constexpr FieldSet kGeoFields = field_bit(Field::kGeoCountry) |
                                       field_bit(Field::kGeoRegion) | field_bit(Field::kGeoCity) |
                                       field_bit(Field::kGeoLat) | field_bit(Field::kGeoLon);
inline constexpr FieldSet kAsFields = field_bit(Field::kAsNumber) | field_bit(Field::kAsOrgName);

class Enricher {
 public:
  virtual ~Enricher() = default;
  /// Fills what ev lacks, never what it carries (upstream's source.geo and source.as win):
  /// the position and place when !ev.has_geo_location (has_geo_location is set only when both
  /// coordinates were found), the AS when ev.as_number == 0. Only fields in `wanted` (those some
  /// detector or the profiles read) need filling. String fields set here must stay valid until the
  /// next call. Called by the engine on its own thread for every accepted event, before time
  /// handling, source classification, profiles and detectors; never throws.
  virtual void enrich(Event& ev, FieldSet wanted) noexcept = 0;
};

}  // namespace portalwatch
