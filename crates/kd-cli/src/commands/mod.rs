//! One module per `kd` subcommand.

pub mod backends;
pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod export;
pub mod import;
mod inputs;
pub mod methods;
pub mod models;
pub mod plan;
pub mod predict;
pub mod print_config;
pub mod suite;
pub mod time;
pub mod train;
