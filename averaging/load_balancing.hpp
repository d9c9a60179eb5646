#pragma once
// Load balancing for butterfly all-reduce: how many elements of the flattened
// vector each peer of a group reduces.
//
// Model (per direction, in units of the vector size S): peer i sends the
// (1 − w_i)·S elements it does not own and receives (n − 1)·w_i·S elements of
// the part it owns (and the reverse in the gather phase), so it moves
// S·(1 + (n − 2)·w_i) bytes over a link of bandwidth b_i. The round takes
// max_i S·(1 + (n − 2)·w_i) / b_i. The linear program
//     minimise τ  s.t.  1 + (n − 2)·w_i ≤ τ·b_i,  Σ w_i = 1,  w_i ≥ 0
// has the water-filling solution
//     w_i = max(0, (τ·b_i − 1) / (n − 2)),  τ = (n − 2 + k) / Σ_{top k} b_j,
// where the top k peers by bandwidth are those with τ·b_i > 1: sort b
// descending and take the largest k whose τ keeps τ·b_k > 1. For large n this
// tends to shares proportional to bandwidth; peers with bandwidth 0 (client
// mode: nobody can dial them) and slow peers own nothing. For n = 2 every split
// costs the same, and shares proportional to bandwidth are used.
//
// Errors: throws apiary::Error{invalid_argument} for negative or non-finite
// bandwidths, or when no peer has a positive bandwidth.
#include <cstddef>
#include <span>
#include <vector>

namespace apiary::averaging {

// Optimal real-valued fractions w_i (sum 1) for the bandwidths b_i.
std::vector<double> optimal_fractions(std::span<const double> bandwidths);

// Integer part sizes that sum exactly to `total_elements` (largest-remainder
// rounding of total·w_i, ties to the lower index). Parts smaller than
// `min_part_elements` are dropped and their elements redistributed among the
// remaining peers, so nobody reduces a uselessly small part.
std::vector<std::size_t> balance_parts(std::size_t total_elements,
                                       std::span<const double> bandwidths,
                                       std::size_t min_part_elements = 0);

}  // namespace apiary::averaging
