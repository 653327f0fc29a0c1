//! Tests that run the real `sagetrain` binary: offline ones, and end-to-end ones against the
//! moto emulator on loopback (started by ./scripts/test), each checked with an independent read.

mod fake_sagemaker;
mod follow_e2e;
mod harness;
mod offline;
mod train_e2e;
