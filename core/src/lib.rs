#![doc = include_str!("../../README.md")]
//!
//! # Features
//!
//! ## Default
//! - `crypto`: the KMS service and the envelope format.
//! - `audit`: the CloudTrail-shaped, tamper-evident audit trail (implies `crypto`).
//! - `git`: CodeCommit repositories and git hosting (implies `crypto`: packs are sealed).
//!
//! ## Optional
//! - `postgres`: the PostgreSQL metadata backend ([`store::PostgresMeta`]).
//! - `s3`: the S3-compatible blob backend ([`store::S3BlobStore`]).
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    rustdoc::broken_intra_doc_links,
    rustdoc::private_intra_doc_links,
    rustdoc::invalid_rust_codeblocks,
    rustdoc::bare_urls
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod arn;
#[cfg(feature = "audit")]
pub mod audit;
pub mod clock;
#[cfg(feature = "git")]
mod codecommit;
#[cfg(feature = "crypto")]
pub mod crypto;
mod error;
pub mod events;
#[cfg(feature = "git")]
mod git;
mod iam;
mod id;
mod keep;
pub mod policy;
#[cfg(feature = "server")]
pub mod server;
pub mod store;

pub use api::{Caller, Client};
#[cfg(feature = "git")]
pub use codecommit::compact::CompactOptions;
#[cfg(feature = "git")]
pub use codecommit::git::{GitRequest, GitService};
pub use error::{Error, ErrorKind, Result};
pub use keep::{Keep, KeepBuilder};
