//! What is connected right now, shared by every endpoint: agents, user sessions (consoles),
//! relay sessions being paired, and WiFiDogX gateways. Endpoints put their connections in
//! here and find each other's through it; nothing here knows an endpoint.

pub mod agents;
pub mod consoles;
pub mod gateways;
pub mod relays;
