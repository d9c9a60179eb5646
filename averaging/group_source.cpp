#include "averaging/group_source.hpp"

#include "core/error.hpp"

namespace apiary::averaging {

StaticGroupSource::StaticGroupSource(std::string prefix, std::vector<GroupMember> members,
                                     PeerId self)
    : prefix_(std::move(prefix)), members_(std::move(members)), self_(self) {
  bool found = false;
  for (const auto& m : members_) found = found || m.address.peer == self_;
  if (!found) throw Error(Errc::invalid_argument, "static group does not contain this peer");
}

asio::awaitable<std::optional<GroupInfo>> StaticGroupSource::find_group(float weight,
                                                                        std::uint64_t schema_hash,
                                                                        Deadline) {
  GroupInfo group;
  const std::string id = prefix_ + "/" + std::to_string(round_++);
  group.group_id.assign(id.begin(), id.end());
  group.schema_hash = schema_hash;
  group.members = members_;
  for (auto& m : group.members)
    if (m.address.peer == self_) m.weight = weight;
  co_return group;
}

}  // namespace apiary::averaging

namespace apiary::averaging {

GridGroupSource::GridGroupSource(std::string prefix, std::vector<GroupMember> members,
                                 std::size_t side, PeerId self)
    : prefix_(std::move(prefix)), members_(std::move(members)), side_(side) {
  if (side_ == 0 || members_.size() != side_ * side_)
    throw Error(Errc::invalid_argument, "grid group: members must fill a side x side grid");
  self_index_ = members_.size();
  for (std::size_t i = 0; i < members_.size(); ++i)
    if (members_[i].address.peer == self) self_index_ = i;
  if (self_index_ == members_.size())
    throw Error(Errc::invalid_argument, "grid group does not contain this peer");
}

asio::awaitable<std::optional<GroupInfo>> GridGroupSource::find_group(float weight,
                                                                      std::uint64_t schema_hash,
                                                                      Deadline) {
  const std::uint64_t round = round_++;
  const bool by_row = round % 2 == 0;
  const std::size_t row = self_index_ / side_;
  const std::size_t col = self_index_ % side_;
  GroupInfo group;
  const std::string id = prefix_ + "/" + std::to_string(round) + "/" +
                         (by_row ? "r" + std::to_string(row) : "c" + std::to_string(col));
  group.group_id.assign(id.begin(), id.end());
  group.schema_hash = schema_hash;
  for (std::size_t k = 0; k < side_; ++k) {
    const std::size_t index = by_row ? row * side_ + k : k * side_ + col;
    group.members.push_back(members_[index]);
    if (index == self_index_) group.members.back().weight = weight;
  }
  co_return group;
}

}  // namespace apiary::averaging
