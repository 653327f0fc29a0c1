//! The checks themselves, one file per link of the chain: credentials, identity and access keys,
//! the execution role, the resources a job reads and writes, its secrets, and the container engine of local runs. Each check that calls AWS takes
//! the SDK client(s) it needs, so that it is tested with `aws-smithy-mocks` as well as end to end.

pub mod credentials;
pub mod engine;
pub mod identity;
pub mod quota;
pub mod remote_debug;
pub mod resources;
pub mod role;
pub mod secrets;

#[cfg(test)]
pub(crate) mod fixtures;
