//! The relay URL's query. It is a wire format, so it is parsed in `ironmesh_proto::relay`
//! (where its tests and fuzz target live); this path is kept for the relay's modules.

pub use ironmesh_proto::relay::RelayQuery;
