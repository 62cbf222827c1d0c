//! Cilium-compatible policy engine (see issue 3).
