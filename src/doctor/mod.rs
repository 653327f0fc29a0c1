//! The checks of `sagetrain doctor`: each finds one link of the chain `train` relies on and says
//! whether it holds, with the fix when it does not.
//!
//! The checks are in [`checks`], one file per link; which check needs which is declared in
//! [`runner::NEEDS`], the checks of a run are built in [`plan`], [`runner`] runs them, and
//! [`report`] holds their outcomes and prints them. The report's JSON form is a stable schema,
//! documented in the README (`schema_version` changes only when a field changes meaning or
//! disappears).

pub mod checks;
pub mod plan;
pub mod report;
pub mod runner;

pub use report::{id, name_of, Check, Report, Status};
