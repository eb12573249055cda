// Synthetic registers: realistic multicultural Canadian registrants (accents, apostrophes,
// hyphens, Punjabi and Chinese scripts, former names), Canadian cities with coordinates and
// plausible postal codes, and a mix of registers, permit statuses and authorizations (about a
// third authorized for dry needling today; pending, suspended, revoked and expired ones too).
//
// Registrant i depends only on (seed, i), so any slice of a register can be generated alone
// and the same register is generated on every machine.
#ifndef PHYSIOREG_TOOLS_GENERATOR_GENERATOR_H_
#define PHYSIOREG_TOOLS_GENERATOR_GENERATOR_H_

#include <cstdint>
#include <string>

#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::tools {

// Registrant `index` (from 0) of the register `seed`; id "PT-0000001" for index 0. Valid per
// ValidatePractitioner for any today on or after 2026-11-25 (no status_history is emitted;
// PROVISIONAL registrants never hold DRY_NEEDLING or SPINAL_MANIPULATION).
physioreg::v1::Practitioner GenerateRegistrant(uint64_t seed, int64_t index);

std::string RegistrationIdFor(int64_t index);

}  // namespace physioreg::tools

#endif  // PHYSIOREG_TOOLS_GENERATOR_GENERATOR_H_
