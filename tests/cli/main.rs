//! Tests that run the real `sagetrain` binary: offline ones, and end-to-end ones against the
//! moto emulator on loopback (started by ./scripts/test), each checked with an independent read.

mod aws_e2e;
mod code_e2e;
mod data_e2e;
mod doctor_e2e;
mod fake_sagemaker;
mod faults;
mod follow_e2e;
mod guards;
mod harness;
mod image_e2e;
mod init_e2e;
mod local_e2e;
mod local_record_e2e;
mod metrics_e2e;
mod offline;
mod proxy;
mod quota_e2e;
mod release;
mod role_e2e;
mod secrets_e2e;
mod session_e2e;
mod settings_e2e;
mod shell;
mod train_e2e;
mod tune_e2e;
