//! What a training job is: its settings (declared once), their rules, the request, the lookups
//! that complete it, how it is created, read back (`--from`) and remembered (the last job of a
//! project).

pub mod code;
pub mod cost;
pub mod create;
pub mod from_job;
pub mod local;
pub mod lookups;
pub mod pools;
pub mod quota;
pub mod remembered;
pub mod request;
pub mod role_iam;
pub mod role_policy;
pub mod secret;
pub mod session;
pub mod settings;
pub mod spec;
pub mod state;
pub mod tune;
