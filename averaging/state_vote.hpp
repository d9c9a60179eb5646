#pragma once
// Which donors a state download trusts — the socket-free core of
// download_state() (averaging/state_sharing.hpp).
//
// A donor is a stranger: any one of them can claim epoch 1000 or announce the
// hashes of a poisoned state. So no single donor decides anything:
//   - each identity votes once (the first answer of a peer id counts);
//   - donors older than the epoch the caller needs, or newer than any epoch
//     the swarm's progress vouches for (VoteRules; the caller knows both from
//     the progress reports a majority vouches for), do not vote;
//   - a donor whose tensor sizes differ from the run's model, or that is
//     banned already, is refused before anything is allocated from its claims
//     (a size mismatch also bans it);
//   - the epoch is the newest one a strict majority of the answering donors
//     has reached (epoch >= E), so a minority claiming a later epoch cannot
//     pull the download forward;
//   - among the donors at exactly that epoch, the content (metadata, sizes,
//     chunk size, chunk hashes) the most of them announce wins, ties going to
//     the earliest announced; when a strict majority of them agrees, the
//     others at that epoch announced a state the majority contradicts and are
//     banned. (Peers of one averaging group hold bit-identical states after a
//     step; in swarms of several groups honest donors may differ, hence a
//     plurality and not a required majority.)
// Pure function; no errors thrown (an empty `chosen` says why in `refusal`).
#include "averaging/state_wire.hpp"
#include "core/identity.hpp"
#include "net/address.hpp"

#include <cstddef>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace apiary::averaging {

// Donors refused for the rest of the run (kept by the caller across downloads).
using DonorBans = std::set<PeerId>;

struct DonorAnswer {
  PeerAddress address;            // its peer id is the voter
  std::optional<StateMeta> meta;  // nullopt: the donor did not answer (or answered garbage)
};

struct DonorChoice {
  std::optional<std::size_t> reference;  // index of the metadata to download by
  std::vector<std::size_t> chosen;       // answers announcing that same content
  std::vector<std::size_t> banned;       // answers whose donors are banned now
  std::size_t refused = 0;               // answered but not chosen (banned ones included)
  std::string refusal;                   // why nothing was chosen
};

struct VoteRules {
  std::span<const std::size_t> expected_sizes;  // the run's model; empty: any sizes
  std::uint64_t min_epoch = 0;
  std::uint64_t max_epoch = std::numeric_limits<std::uint64_t>::max();
};

DonorChoice choose_donors(std::span<const DonorAnswer> answers, const VoteRules& rules,
                          const DonorBans& bans);

}  // namespace apiary::averaging
