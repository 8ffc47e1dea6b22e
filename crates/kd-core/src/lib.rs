//! kd-core: the knowledge-distillation runtime.
//!
//! Owns the model zoo ([`zoo`]), the dataset readers and batch pipeline ([`data`]), the layered
//! configuration ([`config`]), the device choice ([`backend`]), the checkpoint format
//! ([`checkpoint`]), PyTorch checkpoint import ([`import`]), the method plugin API
//! ([`method`]), method libraries loaded at run time ([`dynamic`]), the training runtime
//! ([`runtime`]) and its own CPU convolution kernels ([`kernels`]). The `kd` binary, the method
//! plugins and the integration tests build on it.
//!
//! The modules are layered, each using only those below it (checked by
//! `tests/layering.rs`): `kernels`, `data`, `loss`, `backend` at the bottom; then `config`,
//! `zoo`; `checkpoint`; `import`; `method`; `dynamic`; `runtime`; `bench`; and [`prelude`] on
//! top, which gathers what a method author needs.
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dynamic;
pub mod export;
pub mod import;
pub mod kernels;
pub mod loss;
pub mod method;
pub mod prelude;
pub mod runtime;
pub mod zoo;

#[doc(hidden)]
pub use inventory; // reached by `register_method!`; plugins never depend on inventory directly

/// burn, as kd-core is built against it: method crates use this one (`kd_core::burn`), so there
/// is a single copy of it in any build.
pub use burn;
